"""Cron semantics: the table of cases the issue names, and a brute-force oracle across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from foreman.api.cron import ScheduleError, parse


def fires(expression: str, zone: str, after: str, count: int) -> list[str]:
    """The next `count` fires after a local time, as local ISO times with offset (minutes precision)."""
    cron = parse(expression, zone)
    start = datetime.fromisoformat(after).replace(tzinfo=ZoneInfo(zone))
    return [f.astimezone(cron.zone).isoformat(timespec="minutes") for f in cron.upcoming(start, count)]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # both day fields restricted: either matches (Fridays, and the 13th)
        ("0 0 13 * 5", "2026-01-01T00:00", ["2026-01-02", "2026-01-09", "2026-01-13", "2026-01-16"]),
        # a list starting with */2 is restricted, not a wildcard: odd days, the 15th, and Mondays
        ("0 0 */2,15 * 1", "2026-01-10T00:00", ["2026-01-11", "2026-01-12", "2026-01-13", "2026-01-15"]),
        # one day field a plain *: the other alone decides (Mondays only)
        ("0 0 * * 1", "2026-01-01T00:00", ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"]),
        # names, ranges of names, case-insensitive
        ("0 9 * FEB-mar Mon-Fri", "2026-01-30T00:00", ["2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05"]),
        # 7 is Sunday as well as 0
        ("0 0 * * 7", "2026-01-01T00:00", ["2026-01-04", "2026-01-11", "2026-01-18", "2026-01-25"]),
        # leap day, and the century that is not a leap year
        ("0 0 29 2 *", "2026-01-01T00:00", ["2028-02-29", "2032-02-29", "2036-02-29", "2040-02-29"]),
        ("0 0 29 2 *", "2096-03-01T00:00", ["2104-02-29", "2108-02-29", "2112-02-29", "2116-02-29"]),
        # Feb 30 never, but either-day semantics make it the Mondays of February
        ("0 0 30 2 1", "2026-01-01T00:00", ["2026-02-02", "2026-02-09", "2026-02-16", "2026-02-23"]),
    ],
)
def test_calendar(expression: str, after: str, expected: list[str]) -> None:
    assert [f[:10] for f in fires(expression, "UTC", after, 4)] == expected


def test_steps_ranges_and_lists_within_a_day() -> None:
    assert fires("0,30 */6 * * *", "UTC", "2026-01-01T00:00", 5) == [
        "2026-01-01T00:30+00:00",
        "2026-01-01T06:00+00:00",
        "2026-01-01T06:30+00:00",
        "2026-01-01T12:00+00:00",
        "2026-01-01T12:30+00:00",
    ]
    assert fires("5-15/5 9 * * *", "UTC", "2026-01-01T00:00", 3)[1] == "2026-01-01T09:10+00:00"


@pytest.mark.parametrize(
    ("macro", "expanded"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_macros(macro: str, expanded: str) -> None:
    assert fires(macro, "Europe/Berlin", "2026-03-01T12:34", 3) == fires(
        expanded, "Europe/Berlin", "2026-03-01T12:34", 3
    )


def test_daylight_saving_gap_europe_berlin() -> None:
    """2026-03-29 02:00 CET jumps to 03:00 CEST: a fixed time in the gap fires once at 03:00; every-30-min skips it."""
    assert fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00", 3) == [
        "2026-03-28T02:30+01:00",
        "2026-03-29T03:00+02:00",
        "2026-03-30T02:30+02:00",
    ]
    assert fires("*/30 * * * *", "Europe/Berlin", "2026-03-29T01:00", 3) == [
        "2026-03-29T01:30+01:00",
        "2026-03-29T03:00+02:00",
        "2026-03-29T03:30+02:00",
    ]


def test_daylight_saving_repeat_europe_berlin() -> None:
    """2026-10-25 03:00 CEST goes back to 02:00 CET: a fixed time fires once, a wildcard in both passes."""
    assert fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00", 2) == [
        "2026-10-25T02:30+02:00",
        "2026-10-26T02:30+01:00",
    ]
    assert fires("*/30 * * * *", "Europe/Berlin", "2026-10-25T01:45", 5) == [
        "2026-10-25T02:00+02:00",
        "2026-10-25T02:30+02:00",
        "2026-10-25T02:00+01:00",
        "2026-10-25T02:30+01:00",
        "2026-10-25T03:00+01:00",
    ]


def test_daylight_saving_america_new_york() -> None:
    """2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST."""
    assert fires("0 2 * * *", "America/New_York", "2026-03-07T12:00", 2) == [
        "2026-03-08T03:00-04:00",
        "2026-03-09T02:00-04:00",
    ]
    assert fires("30 1 * * *", "America/New_York", "2026-10-31T12:00", 2) == [
        "2026-11-01T01:30-04:00",
        "2026-11-02T01:30-05:00",
    ]
    # '*' in the minute field makes it a wildcard schedule: both passes of 01:xx fire
    assert fires("*/20 1 * * *", "America/New_York", "2026-11-01T00:00", 6) == [
        "2026-11-01T01:00-04:00",
        "2026-11-01T01:20-04:00",
        "2026-11-01T01:40-04:00",
        "2026-11-01T01:00-05:00",
        "2026-11-01T01:20-05:00",
        "2026-11-01T01:40-05:00",
    ]


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"])
def test_expressions_that_can_never_fire_are_rejected(expression: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse(expression)
    assert raised.value.reason == "ImpossibleSchedule"


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("* * * *", "4 fields"),
        ("0 * * * * *", "6 fields"),
        ("  ", "empty"),
        ("61 * * * *", "out of range"),
        ("0 0 L * *", "day of month field 'L'"),
        ("0 0 ? * 1", "day of month field '?'"),
        ("0 0 * * 1#2", "day of week field '1#2'"),
        ("H * * * *", "minute field 'H'"),
        ("0 9 * * funday", "day of week field 'funday'"),
        ("0 9 * mon *", "month field 'mon'"),
        ("@reboot", "unknown macro"),
    ],
)
def test_invalid_expressions_say_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse(expression)
    assert raised.value.reason == "InvalidSchedule"
    assert says in str(raised.value)


def test_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError) as raised:
        parse("0 3 * * *", "Europe/Atlantis")
    assert raised.value.reason == "InvalidTimeZone"
    assert parse("0 3 * * *", "").zone == ZoneInfo("UTC")


# -- the oracle: every minute of a window, judged by the rule as the README states it -------------------------------

EXPRESSIONS = ["30 2 * * *", "0 2 * * *", "*/15 * * * *", "0 * * * *", "*/20 1 * * *", "15 1,2,3 * * *", "@daily"]
TRANSITIONS = [  # (zone, a local time near a change)
    ("Europe/Berlin", "2026-03-29T02:00"),
    ("Europe/Berlin", "2026-10-25T02:00"),
    ("America/New_York", "2026-03-08T02:00"),
    ("America/New_York", "2026-11-01T01:00"),
    ("Australia/Lord_Howe", "2026-04-05T01:30"),  # a 30-minute change
    ("UTC", "2026-06-01T00:00"),
]


def oracle(expression: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Minute by minute: a minute fires if its wall-clock time matches (a fixed-time schedule only in the first pass
    of a repeat), or it is the first minute after a gap in which a fixed-time schedule matched."""
    cron = parse(expression, zone.key)
    text = cron.expression
    found = []
    minute = start
    while minute < end:
        local = minute.astimezone(zone)
        wall = local.replace(tzinfo=None)
        before = (minute - timedelta(minutes=1)).astimezone(zone)
        second_pass = local.fold == 1
        fires_here = croniter.match(text, wall) and not (second_pass and cron.fixed_time)
        jumped = local.utcoffset() != before.utcoffset() and wall - before.replace(tzinfo=None) > timedelta(minutes=1)
        if jumped and cron.fixed_time:
            skipped = before.replace(tzinfo=None) + timedelta(minutes=1)
            while skipped < wall and not fires_here:
                fires_here = croniter.match(text, skipped)
                skipped += timedelta(minutes=1)
        if fires_here:
            found.append(minute)
        minute += timedelta(minutes=1)
    return found


@settings(max_examples=40, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    transition=st.sampled_from(TRANSITIONS),
    offset_minutes=st.integers(min_value=-300, max_value=300),
)
def test_fires_agree_with_a_minute_by_minute_oracle(
    expression: str, transition: tuple[str, str], offset_minutes: int
) -> None:
    zone = ZoneInfo(transition[0])
    around = datetime.fromisoformat(transition[1]).replace(tzinfo=zone).astimezone(UTC)
    start = around + timedelta(minutes=offset_minutes) - timedelta(hours=6)
    end = start + timedelta(hours=12)
    cron = parse(expression, zone.key)
    expected = oracle(expression, zone, start, end)
    walked, moment = [], start - timedelta(seconds=1)
    while (moment := cron.next_after(moment)) < end:
        walked.append(moment)
    assert walked == expected
    for fire in expected:  # and backwards: the latest fire at or before each fire is that fire
        assert cron.latest_at_or_before(fire) == fire
        earlier = cron.latest_at_or_before(fire - timedelta(seconds=1))
        assert earlier is None or earlier < fire
