"""The shortest time between two fires, against the fires themselves (`Cron.upcoming`), near every offset change."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings

from foreman.api.cron.expression import parse
from foreman.api.cron.intervals import WINDOW, Gap, shortest_gap, too_frequent
from tests.unit.api.cron.test_cron_reference import Reference, cases

pytestmark = pytest.mark.timeout(120, func_only=True)

MOST = 30
"""Fires walked per example: the window ends at the last of them (or after 30 hours)."""


def walked_gap(expression: str, zone: str, start: datetime, end: datetime) -> Gap | None:
    fires = [fire for fire in parse(expression, zone).upcoming(start - timedelta(seconds=1), MOST) if fire <= end]
    pairs = [Gap(first, second) for first, second in pairwise(fires)]
    return min(pairs, key=lambda gap: gap.seconds) if pairs else None  # NB: min keeps the first of equals


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_the_shortest_gap_is_the_closest_pair_of_fires(case: tuple[str, ZoneInfo, datetime]) -> None:
    expression, zone, start = case
    if not Reference(expression, zone).ever_fires():
        return
    fires = parse(expression, zone.key).upcoming(start - timedelta(seconds=1), MOST)
    end = min(start + timedelta(hours=30), fires[-1])
    assert shortest_gap(parse(expression, zone.key), start, end) == walked_gap(expression, zone.key, start, end)


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "start", "days", "seconds", "first"),
    [
        ("* * * * *", "UTC", "2026-12-07T12:00", 1461, 60, "2026-12-07T12:00"),
        ("0 * * * *", "Europe/Berlin", "2026-12-07T12:00", 1461, 3600, "2026-12-07T12:00"),
        ("@yearly", "UTC", "2026-12-07T12:00", 1461, 365 * 86400, "2027-01-01T00:00"),
        # the 02:30 fire moves to 03:00 when the clocks spring over it: one minute after 01:59
        ("30,59 1,2 * * *", "Europe/Berlin", "2026-03-01T00:00", 60, 60, "2026-03-29T01:59"),
        # 02:00 comes twice when the clocks fall back
        ("0 */2 * * *", "Europe/Berlin", "2026-10-01T00:00", 60, 3600, "2026-10-25T02:00"),
        # a leap day beside the first of March: only a window holding a leap year sees a day between them
        ("0 0 29 2,3 *", "UTC", "2026-12-07T12:00", 1461, 29 * 86400, "2028-02-29T00:00"),
    ],
)  # fmt: skip
def test_known_gaps(expression: str, zone: str, start: str, days: int, seconds: int, first: str) -> None:
    cron = parse(expression, zone)
    gap = shortest_gap(cron, at(start, zone), at(start, zone) + timedelta(days=days))
    assert gap is not None
    assert gap.seconds == seconds
    assert gap.first == at(first, zone)


def test_four_years_of_a_two_minute_schedule_take_well_under_a_second() -> None:
    cron = parse("*/2 * * * *", "Europe/Berlin")
    began = time.perf_counter()
    assert too_frequent(cron, 120, at("2026-12-07T12:00"), WINDOW) is None
    assert time.perf_counter() - began < 1.0
    found = too_frequent(cron, 121, at("2026-12-07T12:00"), WINDOW)
    assert found is not None
    assert found.seconds == 120
