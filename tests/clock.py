"""The one test clock: a time the test moves, for code that takes `clock=` (controller, worker, schedules, queues).

`clock()` is the daemons' kind (an aware datetime); `clock.seconds()` the work queue's (seconds on the same time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from foreman.api.models.base import utcnow


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
