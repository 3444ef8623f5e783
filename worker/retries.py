"""The worker's one way to wait before trying a write again: per-task backoff in the shared work queue.

A write that failed for a reason worth retrying (a lost connection, a 5xx past the client's own retries) waits its
task's backoff, doubling with each failure in a row and reset once a write lands, exactly as the controller's keys do.
The waits are timed on the worker's clock, so tests move a fake clock and `poke` instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from foreman.api.runtime.workqueue import WorkQueue


class Retries:
    def __init__(self, clock: Callable[[], float], *, base_delay: float = 0.4, max_delay: float = 5.0):
        self.queue: WorkQueue[str] = WorkQueue(clock, base_delay=base_delay, max_delay=max_delay)
        self._waiting: dict[str, asyncio.Event] = {}

    async def backoff(self, key: str) -> float:
        """Wait out `key`'s next backoff (returned, in seconds)."""
        due = self._waiting.setdefault(key, asyncio.Event())
        delay = self.queue.retry(key)
        await due.wait()
        return delay

    def forget(self, key: str) -> None:
        """The key's write landed (or was given up): its next failure waits the base delay again."""
        self.queue.forget(key)

    def poke(self) -> None:
        """The clock moved (tests): look at what is due now."""
        self.queue.poke()

    async def run(self) -> None:
        """Wake each waiting key when its backoff ran out (until cancelled, after the worker's drain)."""
        while True:
            await self.queue.wait(longest=60.0)
            for key in self.queue.take():
                if (due := self._waiting.pop(key, None)) is not None:
                    due.set()
