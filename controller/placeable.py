"""The tasks that may be placed now, kept in placement order so that a pass need not sort them all.

NB: with thousands of tasks waiting for a few free slots, the controller runs a placement pass on nearly every event;
sorting the whole backlog each time made placement the biggest piece of its own CPU in the throughput benchmark. A
heap hands out the first few in order and leaves the rest untouched.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Hashable, Iterable, Iterator
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Order = TypeVar("Order")
_MISSING = object()


class PlaceableQueue(Generic[Key, Order]):
    """A set of keys, each with an order; `in_order` walks them smallest order first.

    A heap with lazy deletion: `discard` and re-adding with another order only update the key's current order, and a
    heap entry that no longer matches it is dropped when it surfaces (or when the heap is rebuilt for growing too big).
    """

    def __init__(self) -> None:
        self._order: dict[Key, Order] = {}
        self._heap: list[tuple[Order, Key]] = []

    def add(self, key: Key, order: Order) -> None:
        if key in self._order and self._order[key] == order:
            return
        self._order[key] = order
        heapq.heappush(self._heap, (order, key))
        if len(self._heap) > 2 * len(self._order) + 64:
            self._heap = [(order, key) for key, order in self._order.items()]
            heapq.heapify(self._heap)

    def discard(self, key: Key) -> None:
        self._order.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Key]:
        """In no particular order (a snapshot: the queue may change while it is walked)."""
        return iter(list(self._order))

    def in_order(self) -> Generator[Key, None, None]:
        """Keys by order. Keys the caller discards meanwhile are gone; the rest stay queued, however far the walk got.

        NB: close it (or exhaust it) before changing the queue from outside the walk; `contextlib.closing` does.
        """
        walked: list[tuple[Order, Key]] = []
        seen: set[Key] = set()
        try:
            while self._heap:
                entry = heapq.heappop(self._heap)
                order, key = entry
                if key in seen or self._order.get(key, _MISSING) != order:
                    continue  # stale: discarded, re-ordered, or a second entry of one key
                seen.add(key)
                walked.append(entry)
                yield key
        finally:
            for order, key in walked:
                if self._order.get(key, _MISSING) == order:
                    heapq.heappush(self._heap, (order, key))


class PlaceableLanes(Generic[Key, Order]):
    """Placeable keys in lanes (one per TaskQueue), each lane a `PlaceableQueue`: a key is in one lane at a time."""

    def __init__(self) -> None:
        self.lanes: dict[str, PlaceableQueue[Key, Order]] = {}
        self._lane_of: dict[Key, str] = {}

    def add(self, key: Key, order: Order, lane: str) -> None:
        if self._lane_of.get(key) not in (None, lane):
            self.discard(key)
        self._lane_of[key] = lane
        self.lanes.setdefault(lane, PlaceableQueue()).add(key, order)

    def discard(self, key: Key) -> None:
        lane = self._lane_of.pop(key, None)
        if lane is not None:
            self.lanes[lane].discard(key)
            if not self.lanes[lane]:
                del self.lanes[lane]

    def lane_of(self, key: Key) -> str | None:
        return self._lane_of.get(key)

    def keys_in(self, lanes: Iterable[str]) -> list[Key]:
        return [key for lane in lanes if lane in self.lanes for key in self.lanes[lane]]

    def __contains__(self, key: object) -> bool:
        return key in self._lane_of

    def __len__(self) -> int:
        return len(self._lane_of)

    def __iter__(self) -> Iterator[Key]:
        """In no particular order (a snapshot)."""
        return iter(list(self._lane_of))
