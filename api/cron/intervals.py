"""How close together a schedule's fires come: the shortest time between two consecutive fires over a window.

An agent may make schedules only as frequent as its Agent allows (`minScheduleIntervalSeconds`), and "frequent" is
about instants, not the expression's text: `59 1 * * *` beside `30 2 * * *` in Europe/Berlin fires one minute apart
on the night the clocks spring over 02:30 (the 02:30 fire moves to 03:00), and `0 */2 * * *` fires twice within an
hour when the clocks fall back over 02:00. Walking every fire of a minutely schedule over years would take seconds,
so a day whose zone keeps one offset (and SHIFT either side) is taken whole from its times of day: its fires are its
wall-clock times less that offset, the closest pair of them is the closest pair of times of day, and only its first
and last fire meet the neighbouring days'. Days near an offset change are walked fire by fire, through the same
mapping `Cron` fires by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

from foreman.api.cron.expression import Cron

WINDOW = timedelta(days=4 * 365 + 1)
"""How far ahead a schedule is looked at: a leap cycle, so a leap day's fires are in it."""


@dataclass(frozen=True)
class Gap:
    """Two consecutive fires."""

    first: datetime
    second: datetime

    @property
    def seconds(self) -> float:
        return (self.second - self.first).total_seconds()


def shortest_gap(cron: Cron, start: datetime, end: datetime) -> Gap | None:
    """The two consecutive fires in [start, end] closest in time (the earliest such pair); None for fewer than two.

    Two wall-clock times that fire at one instant (a fixed time moved to the end of a gap onto another) are one fire,
    as the schedule's task for that instant is one task."""
    times = cron.times
    closest = _closest_times(times)
    best: Gap | None = None
    last: datetime | None = None
    walked: list[datetime] = []

    def meet(fires: Sequence[datetime]) -> None:
        nonlocal best, last
        chain = [last, *fires] if last is not None else list(fires)
        for first, second in pairwise(chain):
            if best is None or second - first < best.second - best.first:
                best = Gap(first, second)
        if chain:
            last = chain[-1]

    def flush() -> None:
        meet(sorted(set(walked)))
        walked.clear()

    first_day, last_day = _wall_date(cron, start) - timedelta(days=1), _wall_date(cron, end) + timedelta(days=1)
    for day in cron.days(first_day, last_day):
        offset = cron.steady_offset(day)
        whole = None if offset is None else _whole_day(day, times, offset, start, end)
        if whole is None:
            walked.extend(
                instant
                for at in times
                for instant in cron.instants(datetime.combine(day, at))
                if start <= instant <= end
            )
            continue
        assert offset is not None
        flush()
        meet([whole[0]])
        if closest is not None and (best is None or closest[1] < best.second - best.first):
            best = Gap(_instant(day, times[closest[0]], offset), _instant(day, times[closest[0] + 1], offset))
        last = whole[1]
    flush()
    return best


def too_frequent(cron: Cron, minimum_seconds: int, now: datetime, window: timedelta = WINDOW) -> Gap | None:
    """The first closest pair of fires within `window` from now, when they are less than `minimum_seconds` apart."""
    gap = shortest_gap(cron, now, now + window)
    return gap if gap is not None and gap.seconds < minimum_seconds else None


def _closest_times(times: tuple[time, ...]) -> tuple[int, timedelta] | None:
    """The index of the first of the two consecutive times of day closest together, and how far apart they are."""
    if len(times) < 2:
        return None
    minutes = [at.hour * 60 + at.minute for at in times]
    index = min(range(len(minutes) - 1), key=lambda i: minutes[i + 1] - minutes[i])
    return index, timedelta(minutes=minutes[index + 1] - minutes[index])


def _whole_day(
    day: date, times: tuple[time, ...], offset: timedelta, start: datetime, end: datetime
) -> tuple[datetime, datetime] | None:
    """The first and last fire of a steady day lying wholly in [start, end]; None when part of it lies outside."""
    first, final = _instant(day, times[0], offset), _instant(day, times[-1], offset)
    return (first, final) if start <= first and final <= end else None


def _instant(day: date, at: time, offset: timedelta) -> datetime:
    return (datetime.combine(day, at) - offset).replace(tzinfo=UTC)


def _wall_date(cron: Cron, instant: datetime) -> date:
    return instant.astimezone(cron.zone).date()
