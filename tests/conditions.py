"""Waiting on a condition in unit tests of a loop: polled every few milliseconds, failing after a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.005)
