"""When a TaskSchedule fires: a 5-field cron expression (or a macro) read in an IANA time zone.

croniter parses the expression and walks the calendar (ranges, steps, lists, month and weekday names, and the union of
day-of-month and day-of-week when both are restricted). It walks *naive local wall-clock time* here, and this module
maps each wall-clock match to instants, handling daylight-saving changes as Vixie cron does:

- a wall-clock time skipped by a gap (spring forward): a fixed-time schedule (no `*` in its minute or hour field)
  fires once at the first instant after the gap; a wildcard schedule's skipped minutes do not fire;
- a wall-clock time that occurs twice (fall back): a fixed-time schedule fires once, at the first occurrence; a
  wildcard schedule fires at both, since it means "every so often".

Offset changes of more than `SHIFT` (a zone moving across the date line) are treated like clock changes, not DST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from foreman.api import reasons

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_NUMERIC = re.compile(r"^[0-9*/,\-]+$")
_NAMED = re.compile(r"^[0-9a-z*/,\-]+$")
_NAMES = {
    3: {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
    4: {"sun", "mon", "tue", "wed", "thu", "fri", "sat"},
}
SHIFT = timedelta(hours=3)
"""The largest offset change treated as daylight saving (Vixie cron's bound too)."""
_STEPS = 100_000
"""Enough calendar matches to cross any window SHIFT spans (a minutely schedule has 360 in 6 hours)."""


class ScheduleError(ValueError):
    """A schedule that cannot be accepted; `reason` is the condition reason put on the TaskSchedule."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(reasons.INVALID_TIME_ZONE, f"unknown time zone {name!r} (want an IANA name)") from None


def normalize(expression: str) -> str:
    """The 5-field form of an expression, or ScheduleError(InvalidSchedule) with the offending field named.

    Vixie syntax only: croniter also accepts seconds, years, `L`, `W`, `#`, `?` and `H`, which cron does not.
    """
    text = " ".join(expression.lower().split())
    if not text:
        raise ScheduleError(reasons.INVALID_SCHEDULE, "the schedule is empty")
    if text.startswith("@"):
        if text not in MACROS:
            raise ScheduleError(reasons.INVALID_SCHEDULE, f"unknown macro {text!r} (want one of {', '.join(MACROS)})")
        return MACROS[text]
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            reasons.INVALID_SCHEDULE, f"{expression!r} has {len(fields)} fields; want 5 (minute hour dom month dow)"
        )
    for index, value in enumerate(fields):
        names = _NAMES.get(index, set())
        words = set(re.findall(r"[a-z]+", value))
        if not (_NAMED if names else _NUMERIC).match(value) or not words <= names:
            given = expression.split()[index]
            raise ScheduleError(reasons.INVALID_SCHEDULE, f"{FIELDS[index]} field {given!r} is not valid cron syntax")
    return text


@dataclass
class Cron:
    """A parsed schedule. Build with `parse`; `next_after` and `latest_at_or_before` work on aware instants.

    NB: keeps one croniter and moves it, because building one costs ~0.2 ms; so a Cron is not for sharing
    between threads (the daemons are single-threaded asyncio).
    """

    expression: str
    zone: ZoneInfo
    fixed_time: bool
    _walker: croniter = field(repr=False)

    def next_after(self, instant: datetime) -> datetime:
        """The first fire strictly after `instant`."""
        found = self._nearest(instant, forward=True)
        assert found is not None, "parse() rejected schedules that never fire"
        return found

    def latest_at_or_before(self, instant: datetime) -> datetime | None:
        return self._nearest(instant, forward=False)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        fires: list[datetime] = []
        while len(fires) < count:
            after = self.next_after(after)
            fires.append(after)
        return fires

    def _nearest(self, pivot: datetime, *, forward: bool) -> datetime | None:
        def wanted(instant: datetime) -> bool:
            return instant > pivot if forward else instant <= pivot

        # Fast path: the nearest calendar match, when no offset change lies within SHIFT of either end.
        first = next(
            (i for t in self._walk(pivot, forward, timedelta(0)) for i in self._instants(t) if wanted(i)), None
        )
        if first is None:
            return None
        if abs(first - pivot) < SHIFT and self._steady_around(first) and self._steady_around(pivot):
            return first
        # Near an offset change instants are not in wall-clock order: look from SHIFT behind the pivot until SHIFT
        # past the best candidate, beyond which no wall-clock time can map closer.
        best: datetime | None = None
        for wall in self._walk(pivot, forward, SHIFT):
            for instant in self._instants(wall):
                if wanted(instant) and (best is None or (instant < best if forward else instant > best)):
                    best = instant
            if best is not None and abs(wall - self._wall(best)) >= SHIFT and (wall > self._wall(best)) == forward:
                return best
        return best

    def _walk(self, pivot: datetime, forward: bool, margin: timedelta) -> _Walk:
        start = self._wall(pivot) - margin if forward else self._wall(pivot) + margin + timedelta(seconds=1)
        return _Walk(self._walker, start, forward)

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)

    def _steady_around(self, instant: datetime) -> bool:
        """No offset change within SHIFT of instant (two changes 6 hours apart do not happen)."""
        return self._offset(instant - SHIFT) == self._offset(instant + SHIFT)

    def _offset(self, instant: datetime) -> timedelta | None:
        return instant.astimezone(self.zone).utcoffset()

    def _instants(self, wall: datetime) -> tuple[datetime, ...]:
        """The instants a wall-clock match fires at: one, none or one (gap), one or two (repeat); see the module doc."""
        earlier = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        later = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if earlier == later:
            return (earlier,)
        if self._wall(earlier) == wall:  # exists twice: a repeat
            pair = tuple(sorted((earlier, later)))
            return pair[:1] if self.fixed_time else pair
        return (self._gap_end(min(earlier, later), max(earlier, later)),) if self.fixed_time else ()

    def _gap_end(self, before: datetime, after: datetime) -> datetime:
        """The instant the clock jumped forward, between two instants on either side of it (binary search)."""
        target = self._offset(after)
        while after - before > timedelta(seconds=1):
            middle = before + (after - before) / 2
            if self._offset(middle) == target:
                after = middle
            else:
                before = middle
        return after.replace(microsecond=0)


class _Walk:
    """Calendar matches in naive wall-clock time from `start`, one way, bounded so a bug cannot spin forever."""

    def __init__(self, walker: croniter, start: datetime, forward: bool):
        walker.set_current(start, force=True)
        self._step = walker.get_next if forward else walker.get_prev

    def __iter__(self) -> _Walk:
        self._left = _STEPS
        return self

    def __next__(self) -> datetime:
        self._left -= 1
        if self._left < 0:
            raise StopIteration
        try:
            found: datetime = self._step(datetime)
        except CroniterBadDateError:
            raise StopIteration from None
        return found


@lru_cache(maxsize=1024)
def parse(expression: str, time_zone: str = "UTC") -> Cron:
    """Validate and parse; ScheduleError(InvalidSchedule | InvalidTimeZone | ImpossibleSchedule) when it cannot be."""
    zone = zone_of(time_zone)
    text = normalize(expression)
    try:
        walker = croniter(text, datetime(2000, 1, 1), day_or=True)
    except (CroniterBadCronError, CroniterError) as error:
        raise ScheduleError(reasons.INVALID_SCHEDULE, f"{expression!r}: {error}") from None
    minute, hour = text.split(" ")[:2]
    cron = Cron(expression=text, zone=zone, fixed_time="*" not in minute + hour, _walker=walker)
    try:
        walker.get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(
            reasons.IMPOSSIBLE_SCHEDULE, f"{expression!r} matches no date, so it would never fire"
        ) from None
    return cron
