"""Gauges read from the controller's cache when Prometheus scrapes, as a pure function: what the alerts watch.

Read at scrape time, not kept up to date on every pass: a count per queue walks the waiting tasks, which the pass
(run on nearly every event under load) should not pay for; a scrape every 15-30 s does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from foreman.controller.cache import Cache, TaskKey


@dataclass(frozen=True)
class Readings:
    waiting: dict[str, int] = field(default_factory=dict)
    """Per queue: tasks ready to place, waiting for a slot (blocked ones, on dependencies say, are not)."""
    running: dict[str, int] = field(default_factory=dict)
    """Per queue: tasks holding a node (Scheduled or Running). Every queue with waiting tasks is here, 0 when none
    runs, so an alert can compare the two."""
    heartbeat_age: dict[tuple[str, str], float] = field(default_factory=dict)
    """Per (node, phase): seconds since the controller last saw the node's heartbeat change."""
    past_timeout: dict[str, int] = field(default_factory=dict)
    """Per namespace: Running tasks started longer ago than their timeoutSeconds (the worker should have stopped
    them: it is hung, or lost without the controller noticing yet). Every namespace with a Running task is here."""


def read(cache: Cache, waiting: Iterable[TaskKey], now: datetime) -> Readings:
    """The gauges now. `waiting`: the keys of the tasks ready to place (the controller's placeable queue)."""
    waiting_count: Counter[str] = Counter(cache.queue_of(task) for key in waiting if (task := cache.task(key)))
    running = {queue: load.running for queue, load in cache.queue_loads().items()}
    past: Counter[str] = Counter()
    for task in cache.active():
        if task.phase == "Running":
            started = task.status.started_at
            late = started is not None and now - started > timedelta(seconds=task.spec.timeout_seconds)
            past[task.namespace or ""] += 1 if late else 0  # NB: += 0 still stores the namespace, at 0
    ages: dict[tuple[str, str], float] = {
        (name, node.status.phase or "Unknown"): max(0.0, (now - cache.heard_at[name]).total_seconds())
        for name, node in cache.nodes.items()
        if name in cache.heard_at
    }
    return Readings(dict(waiting_count), {**dict.fromkeys(waiting_count, 0), **running}, ages, dict(past))
