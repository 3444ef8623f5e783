"""What should happen to a task, as pure functions of plain data: cancellation, dependencies, retry backoff.

The controller loop asks `decide` about each task it has to look at and turns the answer into one status write.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime

from foreman.api.lifecycle import reasons
from foreman.api.models.base import DECODE_ERROR
from foreman.api.models.envelope import PASSING_VERDICTS, Verdict
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.controller.queues import queue_exists


@dataclass(frozen=True)
class Placeable:
    """Eligible for placement now."""


@dataclass(frozen=True)
class Blocked:
    """Stays Pending; the reason is shown as condition Blocked."""

    reason: str
    message: str


@dataclass(frozen=True)
class Backoff:
    """Stays Pending until `until` (retry backoff); looked at again then."""

    until: datetime


@dataclass(frozen=True)
class Fail:
    reason: str
    message: str
    verdict: Verdict = "INCOMPLETE"


Decision = Placeable | Blocked | Backoff | Fail


def cycle_through(name: str, siblings: Mapping[str, AgenticTask]) -> list[str] | None:
    """A dependency path from `name` back to itself, if there is one (self-dependency included).

    Iterative depth-first search, so a 500-deep chain does not hit the recursion limit.
    """
    start = siblings.get(name)
    if start is None:
        return None
    visited: set[str] = set()
    stack: list[tuple[str, list[str]]] = [(upstream, [name]) for upstream in start.spec.depends_on]
    while stack:
        current, path = stack.pop()
        if current == name:
            return [*path, name]
        if current in visited:
            continue
        visited.add(current)
        task = siblings.get(current)
        if task is not None:
            stack.extend((upstream, [*path, current]) for upstream in task.spec.depends_on)
    return None


def dependency_state(task: AgenticTask, siblings: Mapping[str, AgenticTask]) -> Placeable | Blocked | Fail:
    """Placeable when every upstream Succeeded with a passing verdict; Failed when any cannot; otherwise Blocked."""
    cycle = cycle_through(task.name, siblings)
    if cycle:
        return Fail(reasons.DEPENDENCY_CYCLE, "dependency cycle: " + " -> ".join(cycle))
    missing, waiting = [], []
    for name in task.spec.depends_on:
        upstream = siblings.get(name)
        if upstream is None:
            missing.append(name)
        elif upstream.phase == "Failed":
            why = upstream.status.failure_reason or "Failed"
            return Fail(reasons.UPSTREAM_FAILED, f"upstream {name} failed ({why})")
        elif upstream.phase == "Succeeded" and upstream.status.verdict not in PASSING_VERDICTS:
            return Fail(reasons.UPSTREAM_FAILED, f"upstream {name} finished with verdict {upstream.status.verdict}")
        elif upstream.phase not in TERMINAL_PHASES:
            waiting.append(name)
    if missing:
        # NB: the hint is for a half-applied graph: one document refused at create leaves its dependants here
        hint = " (if creating them failed, fix and apply them again; delete this task to give up)"
        message = "waiting for tasks that do not exist: " + ", ".join(missing) + hint
        return Blocked(reasons.DEPENDENCY_NOT_FOUND, message)
    if waiting:
        return Blocked(reasons.WAITING_FOR_DEPENDENCIES, "waiting for " + ", ".join(waiting))
    return Placeable()


def decide(
    task: AgenticTask,
    siblings: Mapping[str, AgenticTask],
    now: datetime,
    agents: Container[str] = frozenset(),
    queues: Container[str] = frozenset(),
) -> Decision | None:
    """What the controller should do with a task, or None when it is not the controller's to decide (it runs
    on a worker, or it is finished). `agents`: the names of the Agents in the task's namespace; `queues`: of the
    TaskQueues."""
    if task.phase not in ("Pending", "Scheduled"):
        return None
    if task.spec.cancel:
        return Fail(reasons.CANCELLED, f"cancelled while {task.phase}")
    if undecodable := task.metadata.annotations.get(DECODE_ERROR):
        return Fail(reasons.UNDECODABLE, undecodable)
    if task.phase == "Scheduled":
        return None
    state = dependency_state(task, siblings)
    if not isinstance(state, Placeable):
        return state
    if (agent := task.acting_agent_ref) and agent not in agents:
        # NB: like a missing upstream, a missing Agent must not take a node slot; the Agent's arrival wakes the task
        return Blocked(reasons.AGENT_NOT_FOUND, f"Agent {agent} does not exist in {task.namespace}")
    if (queue := task.spec.queue) and not queue_exists(queue, queues):
        return Blocked(reasons.QUEUE_NOT_FOUND, f"TaskQueue {queue} does not exist")
    if task.status.not_before and task.status.not_before > now:
        return Backoff(task.status.not_before)
    return state
