"""One rate-limited work queue (client-go's workqueue): every reason to look at a key again goes through it.

A watch event `add`s a key, a wanted wake-up (a retry backoff running out, a schedule's next slot) is `add_at`, and
a failed write is `retry`: per-key exponential backoff, reset by `forget` once the key went through. The loop that owns
the queue `wait`s, then `take`s every key that is due and decides about them together. Time is the caller's clock in
seconds, so a loop on a fake clock is woken by moving it and `poke`-ing the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from foreman.api.runtime.daemon import backoff_delay, sleep_unless

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float], *, base_delay: float = 0.1, max_delay: float = 5.0):
        self.clock = clock
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._ready: set[K] = set()
        self._due: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        self._wake = asyncio.Event()

    def add(self, key: K) -> None:
        self._ready.add(key)
        self._wake.set()

    def add_all(self, keys: Iterable[K]) -> None:
        self._ready.update(keys)
        self._wake.set()

    def add_after(self, key: K, seconds: float) -> None:
        """Look at `key` again in `seconds`."""
        self.add_at(key, self.clock() + max(0.0, seconds))

    def add_at(self, key: K, when: float) -> None:
        """Look at `key` again at `when` on the queue's clock (replacing an earlier wish for it: the latest decision
        knows best). NB: a decision's own time, not `add_after`, when it was made at an earlier reading of the clock:
        a clock moved meanwhile would push the wake-up later by as much."""
        self._due[key] = when
        self._wake.set()

    def cancel_after(self, key: K) -> None:
        """Drop the timed wish for `key` (a key already added stays)."""
        self._due.pop(key, None)

    def retry(self, key: K) -> float:
        """Look again after a backoff that doubles with each failure of this key in a row; the delay is returned."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = backoff_delay(failures, self.base_delay, self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key went through: its next failure waits the base delay again."""
        self._failures.pop(key, None)

    def remove(self, key: K) -> None:
        """The key's object is gone: nothing is wanted of it any more."""
        self._ready.discard(key)
        self._due.pop(key, None)
        self._failures.pop(key, None)

    def poke(self) -> None:
        """Wake the waiting loop without a key: something else than a key changed (a node, the clock)."""
        self._wake.set()

    def take(self) -> set[K]:
        """Every key due now, removed from the queue."""
        now = self.clock()
        for key in [key for key, due in self._due.items() if due <= now]:
            del self._due[key]
            self._ready.add(key)
        taken, self._ready = self._ready, set()
        self._wake.clear()
        return taken

    def next_due(self) -> float | None:
        """Seconds until the first timed key is due (0 when one already is); None without any."""
        if self._ready:
            return 0.0
        if not self._due:
            return None
        return max(0.0, min(self._due.values()) - self.clock())

    async def wait(self, longest: float) -> None:
        """Until a key is due, the queue is poked, or `longest` seconds passed."""
        due = self.next_due()
        seconds = longest if due is None else min(longest, due)
        if seconds > 0:
            await sleep_unless(self._wake, seconds)

    def __len__(self) -> int:
        return len(self._ready) + len(self._due)
