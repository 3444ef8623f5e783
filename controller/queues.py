"""Sharing the fleet between queues, as pure functions: which queue a task is in, and which waiting task the placement
pass tries next.

Queues take turns by weighted fair share: the queue whose running tasks divided by its weight is lowest goes next
(ties by name), and within a queue tasks go in the controller's own order (priority, then age). It is
work-conserving: a queue takes more than its share when nobody else waits, and when its next task cannot be placed
the pass moves on to the queue's following task. Only `maxRunning` (and `maxRunningPerAccelerator`) is a hard cap: a
queue at its cap is passed over, and its waiting tasks say so (condition Blocked, reason QueueFull).
"""

from __future__ import annotations

from collections.abc import Container, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from foreman.api.models.queues import DEFAULT_QUEUE, LabelSelector, TaskQueue

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class QueueRule:
    name: str
    weight: float = 1.0
    max_running: int | None = None
    max_running_per_accelerator: Mapping[str, int] = field(default_factory=dict)
    selector: LabelSelector | None = None
    """The namespaces whose tasks the queue takes; None: only tasks naming it."""


def rule_of(queue: TaskQueue) -> QueueRule:
    spec = queue.spec
    caps = {str(accelerator): limit for accelerator, limit in spec.max_running_per_accelerator.items()}
    return QueueRule(queue.name, spec.weight, spec.max_running, caps, spec.namespace_selector)


def queue_of(
    named: str | None, namespace: str, rules: Mapping[str, QueueRule], namespace_labels: Mapping[str, Mapping[str, str]]
) -> str:
    """A task's queue: the one it names (`spec.queue`, whether or not it exists), else the first queue by name whose
    namespaceSelector selects its namespace, else the default queue."""
    if named:
        return named
    labels = namespace_labels.get(namespace, {})
    selecting = (name for name, rule in sorted(rules.items()) if rule.selector and rule.selector.selects(labels))
    return next(selecting, DEFAULT_QUEUE)


def queue_exists(name: str, queues: Container[str]) -> bool:
    """The default queue always exists, a TaskQueue of that name or not."""
    return name == DEFAULT_QUEUE or name in queues


@dataclass
class QueueLoad:
    """Tasks of a queue Scheduled or Running, across the fleet (and by accelerator)."""

    running: int = 0
    by_accelerator: dict[str, int] = field(default_factory=dict)

    def add(self, accelerator: str) -> None:
        self.running += 1
        self.by_accelerator[accelerator] = self.by_accelerator.get(accelerator, 0) + 1


def loads_of(running: Iterable[tuple[str, str]]) -> dict[str, QueueLoad]:
    """Each queue's load from its (queue, accelerator) pairs of tasks Scheduled or Running."""
    loads: dict[str, QueueLoad] = {}
    for queue, accelerator in running:
        loads.setdefault(queue, QueueLoad()).add(accelerator)
    return loads


def is_full(rule: QueueRule, load: QueueLoad) -> bool:
    """At its overall cap: none of its tasks may be placed, on any node."""
    return rule.max_running is not None and load.running >= rule.max_running


def full_queues(rules: Mapping[str, QueueRule], loads: Mapping[str, QueueLoad]) -> frozenset[str]:
    return frozenset(name for name, rule in rules.items() if is_full(rule, loads.get(name, QueueLoad())))


def capped_accelerators(rule: QueueRule, load: QueueLoad) -> frozenset[str]:
    """The accelerators on which one more task of the queue would pass its `maxRunningPerAccelerator`."""
    return frozenset(
        accelerator
        for accelerator, limit in rule.max_running_per_accelerator.items()
        if load.by_accelerator.get(accelerator, 0) >= limit
    )


class FairShare(Generic[K]):
    """One placement pass's turn-taking. `waiting`: each queue's tasks in the controller's order (walked lazily: a
    pass that fills the fleet after a few tasks reads no further). The pass asks `next()` for a task to try, and says
    `placed(accelerator)` or `skipped()` of it."""

    def __init__(
        self, waiting: Mapping[str, Iterable[K]], loads: Mapping[str, QueueLoad], rules: Mapping[str, QueueRule]
    ):
        self._lines: dict[str, Iterator[K]] = {name: iter(tasks) for name, tasks in waiting.items()}
        self._heads: dict[str, K] = {}
        self.rules = {name: rules.get(name, QueueRule(name)) for name in {*self._lines, *loads}}
        self.loads = {name: _copy(loads.get(name)) for name in self.rules}
        self._current: str | None = None

    def next(self) -> tuple[str, K] | None:
        """The next task to try, from the queue furthest below its share; None when every queue is done or full."""
        candidates = [name for name in self._lines if not self.full(name) and self._peek(name)]
        if not candidates:
            self._current = None
            return None
        self._current = min(candidates, key=lambda name: (self.loads[name].running / self.rules[name].weight, name))
        return self._current, self._heads[self._current]

    def capped_accelerators(self) -> frozenset[str]:
        """Where the task `next()` gave may not go (its queue's per-accelerator caps)."""
        assert self._current is not None, "asked about the task next() gave"
        return capped_accelerators(self.rules[self._current], self.loads[self._current])

    def placed(self, accelerator: str) -> None:
        assert self._current is not None, "placed() answers next()"
        self.loads[self._current].add(accelerator)
        del self._heads[self._current]

    def skipped(self) -> None:
        """The task could not be placed now: the queue's next task is tried in its turn."""
        assert self._current is not None, "skipped() answers next()"
        del self._heads[self._current]

    def full(self, name: str) -> bool:
        return is_full(self.rules[name], self.loads[name])

    def full_queues(self) -> frozenset[str]:
        return full_queues(self.rules, self.loads)

    def _peek(self, name: str) -> bool:
        if name in self._heads:
            return True
        head = next(self._lines[name], _END)
        if head is _END:
            return False
        self._heads[name] = head  # type: ignore[assignment]
        return True


_END = object()


def positions(waiting: Mapping[str, Iterable[K]]) -> dict[K, int]:
    """Each waiting task's place in its queue's line (1 is next): the queue's own order, which `FairShare` follows."""
    return {task: index for tasks in waiting.values() for index, task in enumerate(tasks, 1)}


def shares(loads: Mapping[str, QueueLoad]) -> dict[str, float]:
    """Each queue's actual share of the running tasks (0 to 1)."""
    total = sum(load.running for load in loads.values())
    return {name: (load.running / total if total else 0.0) for name, load in loads.items()}


def _copy(load: QueueLoad | None) -> QueueLoad:
    return QueueLoad(load.running, dict(load.by_accelerator)) if load else QueueLoad()
