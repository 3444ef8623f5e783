"""Cron semantics: tables of cases (the minute-by-minute reference model is in test_cron_reference.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from foreman.api.cron.expression import ScheduleError, parse


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


def days(expression: str, after: str, count: int) -> list[str]:
    return [f[:10] for f in fires(expression, "UTC", after, count)]


@pytest.mark.parametrize(
    ("equal_range", "value"),
    [
        ("0 3-3 * * *", "0 3 * * *"),
        ("5-5 0 * * *", "5 0 * * *"),
        ("0 3-3/2 * * *", "0 3 * * *"),
        ("0 0 10-10 * *", "0 0 10 * *"),
        ("0 0 10-10/5 * *", "0 0 10 * *"),
        ("0 0 1 3-3 *", "0 0 1 3 *"),
        ("0 0 1 mar-MAR *", "0 0 1 3 *"),
        ("0 0 1 mar-3/4 *", "0 0 1 3 *"),
        ("0 0 * * 3-3", "0 0 * * 3"),
        ("0 0 * * wed-Wed/2", "0 0 * * 3"),
        ("0 0 * * 7-7", "0 0 * * 0"),
        ("0 0 * * sun-0", "0 0 * * 0"),
    ],
)
def test_equal_range_is_one_value(equal_range: str, value: str) -> None:
    """Issue 16: croniter read `X-X` as the whole field, so `0 3-3 * * *` fired every hour."""
    start = "2026-01-01T00:00"
    assert fires(equal_range, "Europe/Berlin", start, 6) == fires(value, "Europe/Berlin", start, 6)


def test_a_nightly_equal_range_fires_once_a_night() -> None:
    assert fires("0 3-3 * * *", "UTC", "2026-01-01T00:00", 2) == ["2026-01-01T03:00+00:00", "2026-01-02T03:00+00:00"]


def test_star_in_a_day_list_is_a_restriction() -> None:
    """Issue 16: only a field that is exactly `*` is unrestricted; `1,*` is every day of the month, restricted, so
    beside Mondays it makes every day (the union), not Mondays only."""
    assert days("0 0 1,* * mon", "2026-01-05T12:00", 4) == ["2026-01-06", "2026-01-07", "2026-01-08", "2026-01-09"]
    assert days("0 0 15 * 1,*", "2026-01-05T12:00", 2) == ["2026-01-06", "2026-01-07"]
    assert days("0 0 * * mon", "2026-01-05T12:00", 2) == ["2026-01-12", "2026-01-19"]


@pytest.mark.parametrize("week", ["0-6", "sun-sat", "0-7", "*/1", "mon-sat,sun"])
def test_full_range_day_field_is_a_restriction(week: str) -> None:
    """Issue 16: a day of week listing every day beside `*/2` as day of month is a restriction (as in Kubernetes
    CronJobs), so the union is every day; croniter (and Vixie cron, for which `*/2` is unrestricted) gave odd days."""
    assert days(f"0 0 */2 * {week}", "2026-01-01T12:00", 3) == ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert days("0 0 1-31 * */2", "2026-01-01T12:00", 3) == ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert days("0 0 */2 * *", "2026-01-01T12:00", 3) == ["2026-01-03", "2026-01-05", "2026-01-07"]


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 22-2 * * *", "hour field '22-2' is a range running backwards; write it as 22-23,0-2"),
        ("0 0 * * fri-mon", "day of week field 'fri-mon' is a range running backwards; write it as 5-7,0-1"),
        ("0 0 * * 1,SAT-tue/2", "day of week field '1,SAT-tue/2' is a range running backwards (sat-tue/2)"),
        ("0 0 * nov-feb *", "month field 'nov-feb' is a range running backwards; write it as 11-12,1-2"),
        ("0 0 31-1 * *", "day of month field '31-1' is a range running backwards; write it as 31,1"),
    ],
)
def test_reversed_ranges_are_rejected(expression: str, says: str) -> None:
    """Rejected, as Kubernetes CronJobs and ISC cron do; croniter wrapped them around."""
    with pytest.raises(ScheduleError, match="running backwards") as raised:
        parse(expression)
    assert raised.value.reason == "InvalidSchedule"
    assert says in str(raised.value)


@pytest.mark.parametrize(
    ("start_and_step", "same_as"),
    [
        ("5/15 * * * *", "5-59/15 * * * *"),
        ("0 20/2 * * *", "0 20-23/2 * * *"),
        ("0 0 25/3 * *", "0 0 25-31/3 * *"),
        ("0 0 1 oct/2 *", "0 0 1 10-12/2 *"),
        ("0 0 * * fri/1", "0 0 * * 5-7"),
    ],
)
def test_a_start_with_a_step_runs_to_the_end_of_the_field(start_and_step: str, same_as: str) -> None:
    """`N/step` is `N-last/step`, as in Kubernetes CronJobs (robfig/cron)."""
    assert fires(start_and_step, "UTC", "2026-01-01T00:00", 8) == fires(same_as, "UTC", "2026-01-01T00:00", 8)
    assert parse("5/15 * * * *").upcoming(datetime.fromisoformat("2026-01-01T00:00Z"), 4)[-1].minute == 50


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
        ("61 * * * *", "minute field '61' is out of range 0-59"),
        ("0 24 * * *", "hour field '24' is out of range 0-23"),
        ("0 0 0 * *", "day of month field '0' is out of range 1-31"),
        ("0 0 1 1-13 *", "month field '1-13' is out of range 1-12 (13)"),
        ("0 0 * * 8", "day of week field '8' is out of range 0-7"),
        ("*/0 * * * *", "minute field '*/0' has a step of 0"),
        ("1,,2 * * * *", "minute field '1,,2' is not valid cron syntax"),
        ("*-5 * * * *", "minute field '*-5' is not valid cron syntax"),
        ("1-2-3 * * * *", "minute field '1-2-3' is not valid cron syntax"),
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


@pytest.mark.parametrize("expression", ["0 " + "1" * 5000 + " * * *", "*/" + "1" * 5000 + " * * * *"])
def test_a_number_too_long_for_int_is_invalid_not_a_crash(expression: str) -> None:
    with pytest.raises(ScheduleError, match=r"out of range 0-23|minute field .* is not valid cron syntax") as raised:
        parse(expression)
    assert raised.value.reason == "InvalidSchedule"


def test_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError) as raised:
        parse("0 3 * * *", "Europe/Atlantis")
    assert raised.value.reason == "InvalidTimeZone"
    assert parse("0 3 * * *", "").zone == ZoneInfo("UTC")
