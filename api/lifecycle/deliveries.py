"""Which deliveries a finished task owes, as pure functions: the notifier delivers them, the controller keeps a task
whose deliveries are outstanding past its time to live (foreman.controller.expiry)."""

from __future__ import annotations

from foreman.api.models.agents import AgentSpec
from foreman.api.models.notify import NotifyEntry
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask


def notify_list(task: AgenticTask, agent: AgentSpec | None) -> list[NotifyEntry]:
    """The task's own notify list, else its Agent's (a default, not a merge: a task that says where says all)."""
    return task.spec.notify or (agent.notify if agent is not None else [])


def firing(task: AgenticTask, agent: AgentSpec | None) -> list[tuple[int, NotifyEntry]]:
    """The entries (with their index) that hear about this task: none until it finished."""
    if task.phase not in TERMINAL_PHASES:
        return []
    verdict = task.status.verdict
    return [(i, entry) for i, entry in enumerate(notify_list(task, agent)) if entry.fires_on(task.phase, verdict)]


def outstanding(task: AgenticTask, agent: AgentSpec | None) -> list[int]:
    """Indexes of the firing entries not yet Delivered or Failed (none recorded, or Pending)."""
    final = {d.index for d in task.status.deliveries if d.state != "Pending"}
    return [i for i, _ in firing(task, agent) if i not in final]
