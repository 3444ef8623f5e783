"""Sharing the fleet between queues, as pure functions: which waiting task the placement pass tries next.

Queues take turns by weighted fair share: the queue whose running tasks divided by its weight is lowest goes next
(ties by name), and within a queue tasks go in the controller's own order (priority, then age). It is
work-conserving: a queue takes more than its share when nobody else waits, and when its next task cannot be placed
the pass moves on to the queue's following task. Only `maxRunning` (and `maxRunningPerAccelerator`) is a hard cap: a
queue at its cap is passed over, and its waiting tasks are reported as held by the cap (condition `QueueFull`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_QUEUE = "default"
"""Where tasks go that no TaskQueue selects: weight 1, no cap."""


@dataclass(frozen=True)
class QueueRule:
    name: str
    weight: float = 1.0
    max_running: int | None = None
    max_running_per_accelerator: Mapping[str, int] = field(default_factory=dict)


@dataclass
class QueueLoad:
    """Tasks of a queue Scheduled or Running, across the fleet (and by accelerator)."""

    running: int = 0
    by_accelerator: dict[str, int] = field(default_factory=dict)


def at_cap(rule: QueueRule, load: QueueLoad, accelerator: str) -> bool:
    """Whether one more task of the queue, on a node of this accelerator, would pass a hard cap."""
    if rule.max_running is not None and load.running >= rule.max_running:
        return True
    limit = rule.max_running_per_accelerator.get(accelerator)
    return limit is not None and load.by_accelerator.get(accelerator, 0) >= limit


class FairShare(Generic[K]):
    """One placement pass's turn-taking. `waiting`: each queue's tasks in the controller's order. The pass asks
    `next()` for a task to try, and says `placed(...)` (with the node's accelerator) or `skipped()` of it."""

    def __init__(
        self,
        waiting: Mapping[str, Sequence[K]],
        loads: Mapping[str, QueueLoad],
        rules: Mapping[str, QueueRule],
    ):
        self._waiting = {name: list(tasks) for name, tasks in waiting.items() if tasks}
        self._cursor = dict.fromkeys(self._waiting, 0)
        self._rules = {name: rules.get(name, QueueRule(name)) for name in self._waiting}
        self.loads = {name: _copy(loads.get(name)) for name in self._waiting}
        self._current: tuple[str, K] | None = None

    def next(self) -> tuple[str, K] | None:
        """The next task to try, from the queue furthest below its share; None when every queue is done or capped.

        NB: a queue at its overall cap is passed over; a per-accelerator cap is the caller's to check (it depends
        on the node), with `at_cap`."""
        open_queues = [
            name for name, tasks in self._waiting.items() if self._cursor[name] < len(tasks) and not self._full(name)
        ]
        if not open_queues:
            self._current = None
            return None
        name = min(open_queues, key=lambda q: (self.loads[q].running / self._rules[q].weight, q))
        self._current = (name, self._waiting[name][self._cursor[name]])
        return self._current

    def placed(self, accelerator: str) -> None:
        assert self._current is not None, "placed() answers next()"
        name, _ = self._current
        load = self.loads[name]
        load.running += 1
        load.by_accelerator[accelerator] = load.by_accelerator.get(accelerator, 0) + 1
        self._cursor[name] += 1

    def skipped(self) -> None:
        """The task could not be placed now: the queue's next task is tried in its turn."""
        assert self._current is not None, "skipped() answers next()"
        self._cursor[self._current[0]] += 1

    def held_by_cap(self) -> dict[K, str]:
        """Tasks not tried because their queue reached `maxRunning`: the message for their QueueFull condition."""
        held: dict[K, str] = {}
        for name, tasks in self._waiting.items():
            if self._full(name):
                rule = self._rules[name]
                message = f"queue {name} is at its maxRunning={rule.max_running}"
                held.update(dict.fromkeys(tasks[self._cursor[name] :], message))
        return held

    def _full(self, name: str) -> bool:
        rule = self._rules[name]
        return rule.max_running is not None and self.loads[name].running >= rule.max_running


def positions(waiting: Mapping[str, Sequence[K]]) -> dict[K, int]:
    """Each waiting task's place in its queue's line (1 is next): the queue's own order, which `FairShare` follows."""
    return {task: index for tasks in waiting.values() for index, task in enumerate(tasks, 1)}


def shares(loads: Mapping[str, QueueLoad], rules: Mapping[str, QueueRule]) -> dict[str, float]:
    """Each queue's actual share of the running tasks (0 to 1)."""
    total = sum(load.running for load in loads.values())
    return {name: (load.running / total if total else 0.0) for name, load in loads.items() if name in rules}


def _copy(load: QueueLoad | None) -> QueueLoad:
    return QueueLoad(load.running, dict(load.by_accelerator)) if load else QueueLoad()
