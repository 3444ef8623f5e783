"""Why a Pending task waits, and where it stands in its queue's line: computed on read (positions change with every
placement, so they are never written to the API), with the controller's own functions: `decide` for what blocks a
task, `queue_of` for its queue, `placement_order` for its place in the line, `why_held` for what a slot cannot fix.

`foreman get tasks`, `foreman describe task` and the dashboard fill a `Cache` from what they list (`fleet_of`) and ask
`line_up`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from foreman.api.lifecycle import reasons
from foreman.api.models.agents import Agent
from foreman.api.models.base import wire_time
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue
from foreman.api.models.tasks import AgenticTask
from foreman.controller.cache import Cache, TaskKey
from foreman.controller.config import ControllerConfig
from foreman.controller.match import Placer
from foreman.controller.plan import PlacementOrder, needs, offer_of, placement_order, why_held
from foreman.controller.queues import full_queues
from foreman.controller.rules import Backoff, Blocked, Placeable, decide
from foreman.controller.warmwait import cold_start_delay, waiting_message, warm_deadline

SLOT_BUSY_MESSAGE = "waiting for a free slot on a fitting node"


@dataclass(frozen=True)
class Waiting:
    queue: str
    position: int | None
    """1 is next in the queue's line; None while something other than a slot holds the task (dependencies, backoff)."""
    reason: str
    message: str

    def sentence(self) -> str:
        """`foreman describe task`'s explanation."""
        where = f"number {self.position} in the line of queue {self.queue}" if self.position else f"queue {self.queue}"
        return f"Pending in {where}: {self.message} ({self.reason})."


def fleet_of(
    tasks: Iterable[AgenticTask],
    nodes: Iterable[FleetNode],
    queues: Iterable[TaskQueue],
    namespace_labels: Mapping[str, Mapping[str, str]],
    agents: Iterable[Agent],
    now: datetime,
) -> Cache:
    """A cache holding what a reader listed or watched (the CLI, the dashboard), for `line_up`."""
    cache = Cache()
    cache.replace_tasks(tasks)
    cache.replace_nodes(nodes, now)
    cache.replace_queues(queues)
    cache.replace_namespace_labels(namespace_labels)
    cache.replace_agents((agent.namespace or "", agent.name, agent.spec) for agent in agents)
    return cache


def line_up(
    cache: Cache, now: datetime, *, cold_start_default: float = ControllerConfig.cold_start_delay
) -> dict[TaskKey, Waiting]:
    """Every Pending task of the cache: its queue, its position in that queue's line and why it waits (for a warm
    node too: `cold_start_default` is the controller's coldStartDelay)."""
    lines: dict[str, list[tuple[PlacementOrder, TaskKey]]] = {}
    waiting: dict[TaskKey, Waiting] = {}
    for key in cache.by_phase["Pending"]:
        task = cache.task(key)
        if task is None:
            continue
        queue = cache.queue_of(task)
        decision = decide(task, cache.siblings(key[0]), now, cache.agents.get(key[0], frozenset()), cache.queue_rules)
        if isinstance(decision, Blocked):
            waiting[key] = Waiting(queue, None, decision.reason, decision.message)
        elif isinstance(decision, Backoff):
            message = f"retry backoff until {wire_time(decision.until)}"
            waiting[key] = Waiting(queue, None, reasons.RETRY_BACKOFF, message)
        elif isinstance(decision, Placeable):
            lines.setdefault(queue, []).append((placement_order(task), key))
    ready = (offer_of(node) for node in cache.nodes.values() if node.status.phase == "Ready")
    # NB: asked whether anything could ever fit, and whether a busy node has a task's model loaded (policy warm)
    placer = Placer(ready, cache.usage(), policy="warm")
    full = full_queues(cache.queue_rules, cache.queue_loads())
    for queue, line in lines.items():
        for position, (_, key) in enumerate(sorted(line), 1):
            task = cache.task(key)
            assert task is not None, "lined up from the cache"
            need = needs(cache, task)
            delay = cold_start_delay(cache, task, cold_start_default)
            warm = warm_deadline(need, task, placer, now, delay) and waiting_message(need, delay)
            why = why_held(need, placer, queue, full) or warm or (reasons.SLOT_BUSY, SLOT_BUSY_MESSAGE)
            waiting[key] = Waiting(queue, position, *why)
    return waiting
