"""When a TaskSchedule fires: a 5-field cron expression (or a macro) read in an IANA time zone.

The expression is matched here, not by a library: each field becomes a set of values, and a day matches by the
README's rule (a day field is unrestricted only when it is exactly `*`; when both are restricted, either may match).
croniter, used before, reads `3-3` as the whole field and `1,*` or a full `0-6` beside `*/2` as unrestricted, and
working around its heuristics was longer than this. The calendar is walked in *naive local wall-clock time*, and
this module maps each wall-clock match to instants, handling daylight-saving changes as Vixie cron does:

- a wall-clock time skipped by a gap (spring forward): a fixed-time schedule (no `*` in its minute or hour field)
  fires once at the first instant after the gap; a wildcard schedule's skipped minutes do not fire;
- a wall-clock time that occurs twice (fall back): a fixed-time schedule fires once, at the first occurrence; a
  wildcard schedule fires at both, since it means "every so often".

Offset changes of more than `SHIFT` (a zone moving across the date line) are treated like clock changes, not DST.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SHIFT = timedelta(hours=3)
"""The largest offset change treated as daylight saving (Vixie cron's bound too)."""
_DAY = timedelta(days=1)
_LONGEST = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
"""The most days each month can have, for telling a schedule that never fires (`0 0 30 2 *`)."""
_ITEM = re.compile(r"(?:(?P<star>\*)|(?P<first>[0-9a-z]+)(?:-(?P<last>[0-9a-z]+))?)(?:/(?P<step>[0-9]{1,4}))?")
"""One item of a field's comma-separated list: `*`, `N` or `N-M`, each with an optional `/step` (below 10,000)."""


INVALID_SCHEDULE: Final = "InvalidSchedule"
INVALID_TIME_ZONE: Final = "InvalidTimeZone"
IMPOSSIBLE_SCHEDULE: Final = "ImpossibleSchedule"
"""The reasons a schedule is refused (foreman.api.lifecycle.reasons names them with the rest of the vocabulary)."""


class ScheduleError(ValueError):
    """A schedule that cannot be accepted; `reason` is the condition reason put on the TaskSchedule."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _Field:
    """One of the five fields: its name in messages, its values `low`..`high`, and the names of its values."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    """`names[i]` stands for `low + i`."""

    def values(self, text: str, given: str) -> frozenset[int]:
        """The values the field's (lower-cased) text allows; `given` is the field as written, for messages."""
        values: set[int] = set()
        for item in text.split(","):
            match = _ITEM.fullmatch(item)
            if match is None:
                raise self._error(given, "is not valid cron syntax")
            step = int(match["step"] or 1)
            if step == 0:
                raise self._error(given, "has a step of 0")
            if match["star"]:
                low, high = self.low, self.high
            else:
                low = self._value(match["first"], given)
                # `N-N` is N, whatever the step (croniter read it as the whole field); `N/step` runs to the field's
                # end, as in Kubernetes CronJobs (robfig/cron) and cronsim.
                high = self._value(match["last"], given) if match["last"] else self.high if match["step"] else low
                if low > high:
                    # Rejected, as Kubernetes CronJobs and ISC cron do, rather than guessing how a step wraps around.
                    where = "" if item == text else f" ({item})"
                    split = f"{_span(low, self.high)},{_span(self.low, high)}"
                    raise self._error(given, f"is a range running backwards{where}; write it as {split}")
            values.update(range(low, high + 1, step))
        return frozenset(values)

    def _value(self, token: str, given: str) -> int:
        if token in self.names:
            return self.low + self.names.index(token)
        if not token.isdigit():
            raise self._error(given, "is not valid cron syntax")
        if len(token) > 4 or not self.low <= int(token) <= self.high:  # int() refuses numbers of 4,300 digits
            where = "" if token == given else f" ({token})"
            raise self._error(given, f"is out of range {self.low}-{self.high}{where}")
        return int(token)

    def _error(self, given: str, complaint: str) -> ScheduleError:
        return ScheduleError(INVALID_SCHEDULE, f"{self.name} field {given!r} {complaint}")


def _span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    _Field("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),  # 7 is Sunday too (Vixie)
)


@dataclass(frozen=True)
class _Calendar:
    """The wall-clock minutes an expression matches, walked from a given time."""

    times: tuple[time, ...]
    """The matching times of day, ascending."""
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday (a 7 in the expression is folded onto it)."""
    either_day: bool
    """Both day fields are restricted, so a day matches if either does (README: only exactly `*` is unrestricted)."""

    @classmethod
    def of(cls, fields: list[str], given: list[str]) -> _Calendar:
        minutes, hours, days, months, weekdays = (
            spec.values(text, written) for spec, text, written in zip(_FIELDS, fields, given, strict=True)
        )
        return cls(
            times=tuple(time(hour, minute) for hour in sorted(hours) for minute in sorted(minutes)),
            days=days,
            months=months,
            weekdays=frozenset(weekday % 7 for weekday in weekdays),
            either_day=fields[2] != "*" and fields[4] != "*",
        )

    def ever_matches(self) -> bool:
        """A restricted day of week matches some day of every month; otherwise some day of month must exist."""
        return self.either_day or any(day <= _LONGEST[month] for month in self.months for day in self.days)

    def matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        return (by_date or by_weekday) if self.either_day else (by_date and by_weekday)

    def walk(self, start: datetime, forward: bool) -> Iterator[datetime]:
        """Matches strictly after `start` ascending, or at or before it descending, until the calendar ends."""
        every_day = self.times if forward else self.times[::-1]
        cut = bisect_right(self.times, time(start.hour, start.minute))
        times, day = self.times[cut:] if forward else self.times[:cut][::-1], start.date()
        while True:
            if self.matches(day):
                yield from (datetime.combine(day, at) for at in times)
            try:
                day = self._next_day(day, forward)
            except OverflowError:  # past year 9999 or before year 1
                return
            times = every_day

    def matching_days(self, first: date, last: date) -> Iterator[date]:
        """The matching days from first to last, both included."""
        day = first if first.month in self.months else self._next_day(first, forward=True)
        while day <= last:
            if self.matches(day):
                yield day
            try:
                day = self._next_day(day, forward=True)
            except OverflowError:
                return

    def _next_day(self, day: date, forward: bool) -> date:
        day = day + _DAY if forward else day - _DAY
        while day.month not in self.months:  # skip whole months: a leap-day schedule waits up to 8 years
            day = (day.replace(day=28) + 4 * _DAY).replace(day=1) if forward else day.replace(day=1) - _DAY
        return day


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(INVALID_TIME_ZONE, f"unknown time zone {name!r} (want an IANA name)") from None


def normalize(expression: str) -> str:
    """The 5-field form of an expression, or ScheduleError(InvalidSchedule) with the offending field named.

    Vixie syntax only: no seconds or years, `L`, `W`, `#`, `?` or `H`.
    """
    return _read(expression)[0]


def _read(expression: str) -> tuple[str, _Calendar]:
    text = " ".join(expression.lower().split())
    if not text:
        raise ScheduleError(INVALID_SCHEDULE, "the schedule is empty")
    if text.startswith("@"):
        if text not in MACROS:
            raise ScheduleError(INVALID_SCHEDULE, f"unknown macro {text!r} (want one of {', '.join(MACROS)})")
        text = expression = MACROS[text]
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            INVALID_SCHEDULE, f"{expression!r} has {len(fields)} fields; want 5 (minute hour dom month dow)"
        )
    return text, _Calendar.of(fields, expression.split())


@dataclass(frozen=True)
class Cron:
    """A parsed schedule. Build with `parse`; `next_after` and `latest_at_or_before` work on aware instants.

    Immutable, so `parse` can hand the same one to every caller.
    """

    expression: str
    zone: ZoneInfo
    fixed_time: bool
    _calendar: _Calendar = field(repr=False)

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

    @property
    def times(self) -> tuple[time, ...]:
        """The times of day it fires at (wall clock), ascending."""
        return self._calendar.times

    def days(self, first: date, last: date) -> Iterator[date]:
        """The wall-clock days it fires on, from first to last."""
        return self._calendar.matching_days(first, last)

    def instants(self, wall: datetime) -> tuple[datetime, ...]:
        """The instants a wall-clock time it matches fires at (none, one or two near an offset change)."""
        return self._instants(wall)

    def steady_offset(self, day: date) -> timedelta | None:
        """The zone's UTC offset through `day` and SHIFT either side of it, or None when it changes there."""
        start = datetime.combine(day, time()).replace(tzinfo=self.zone).astimezone(UTC) - SHIFT
        offset = self._offset(start)
        return offset if offset == self._offset(start + _DAY + 2 * SHIFT) else None

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

    def _walk(self, pivot: datetime, forward: bool, margin: timedelta) -> Iterator[datetime]:
        """Wall-clock matches from `margin` behind the pivot (in the direction of the walk), one way."""
        return self._calendar.walk(self._wall(pivot) + (-margin if forward else margin), forward)

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


@lru_cache(maxsize=1024)
def parse(expression: str, time_zone: str = "UTC") -> Cron:
    """Validate and parse; ScheduleError(InvalidSchedule | InvalidTimeZone | ImpossibleSchedule) when it cannot be."""
    zone = zone_of(time_zone)
    text, calendar = _read(expression)
    if not calendar.ever_matches():
        raise ScheduleError(IMPOSSIBLE_SCHEDULE, f"{expression!r} matches no date, so it would never fire")
    minute, hour = text.split(" ")[:2]
    return Cron(expression=text, zone=zone, fixed_time="*" not in minute + hour, _calendar=calendar)
