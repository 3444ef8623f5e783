"""One rate-limited work queue (client-go's workqueue): every reason to look at a key again goes through it.

A watch event `add`s a key, a wanted wake-up (a retry backoff running out, a schedule's next slot) is `add_at`, and
a failed write is `retry`: per-key exponential backoff, reset by `forget` once the key went through. The loop that owns
the queue `wait`s, then `take`s every key that is due and decides about them together. Time is the caller's clock in
seconds, so a loop on a fake clock is woken by moving it and `poke`-ing the queue.

Timed keys are kept in a heap as well, so taking the due ones and finding the next costs O(log n) in the number of
timed keys, not a scan: every finished task waiting for its time to live has one, and the loop asks on every pass.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from foreman.api.runtime.backoff import backoff_delay
from foreman.api.runtime.daemon import sleep_unless

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float], *, base_delay: float = 0.1, max_delay: float = 5.0):
        self.clock = clock
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._ready: set[K] = set()
        self._due: dict[K, float] = {}
        """The one wish per key that counts."""
        self._heap: list[tuple[float, int, K]] = []
        """The same wishes by time, plus outdated ones (skipped when met; dropped when they are the majority)."""
        self._order = itertools.count()  # NB: ties never compare keys, which need not be ordered
        self._failures: dict[K, int] = {}
        self._wake = asyncio.Event()

    def add(self, key: K) -> None:
        self._ready.add(key)
        self._wake.set()

    def add_all(self, keys: Iterable[K]) -> None:
        self._ready.update(keys)
        self._wake.set()

    def add_after(self, key: K, seconds: float) -> None:
        """Look at `key` again in `seconds` (to the microsecond, the resolution of the daemons' clocks).

        NB: a float sum of a timestamp and a delay lands an ulp past the clock's reading at that moment about 40 % of
        the time; on a clock that stops exactly there (a test's), the key never came due."""
        self.add_at(key, round(self.clock() + max(0.0, seconds), 6))

    def add_at(self, key: K, when: float) -> None:
        """Look at `key` again at `when` on the queue's clock (replacing an earlier wish for it: the latest decision
        knows best). NB: a decision's own time, not `add_after`, when it was made at an earlier reading of the clock:
        a clock moved meanwhile would push the wake-up later by as much. The same wish again wakes nobody: a loop that
        makes it on every pass (a task waiting for a warm node) would otherwise pass again at once, for ever."""
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._order), key))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(due, next(self._order), k) for k, due in self._due.items()]
            heapq.heapify(self._heap)
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
        while (first := self._first()) is not None and first[0] <= now:
            heapq.heappop(self._heap)
            del self._due[first[1]]
            self._ready.add(first[1])
        taken, self._ready = self._ready, set()
        self._wake.clear()
        return taken

    def next_due(self) -> float | None:
        """Seconds until the first timed key is due (0 when one already is); None without any."""
        if self._ready:
            return 0.0
        first = self._first()
        return None if first is None else max(0.0, first[0] - self.clock())

    def _first(self) -> tuple[float, K] | None:
        """The earliest wish that still counts (outdated ones on top are dropped on the way)."""
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) == when:
                return when, key
            heapq.heappop(self._heap)
        return None

    async def wait(self, longest: float) -> None:
        """Until a key is due, the queue is poked, or `longest` seconds passed."""
        due = self.next_due()
        seconds = longest if due is None else min(longest, due)
        if seconds > 0:
            await sleep_unless(self._wake, seconds)

    def __len__(self) -> int:
        return len(self._ready) + len(self._due)
