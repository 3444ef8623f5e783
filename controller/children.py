"""What the controller does with an agent's child task, as a pure function: refuse it before it is placed (what
admission cannot see: the parent, its Agent, the counts), or cancel it when its parent was cancelled or is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from foreman.api.lifecycle import reasons, subtasks
from foreman.api.models.agents import AgentSpec
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.controller.rules import Fail

REFUSALS = (reasons.SUBTASK_LIMIT_EXCEEDED, reasons.SUBTASK_NOT_ALLOWED, reasons.PARENT_NOT_RUNNING)


@dataclass(frozen=True)
class CancelChild:
    """Set spec.cancel on a child that holds a node: its worker stops it (one Scheduled, the next pass fails)."""

    message: str


def child_decision(
    task: AgenticTask,
    parent: AgenticTask | None,
    labelled: Iterable[AgenticTask],
    agent_of: Mapping[str, AgentSpec],
) -> Fail | CancelChild | None:
    """For an agent-made `task`: Fail (Pending and refused), CancelChild (holding a node, its parent cancelled or
    gone), or None (nothing to do here). `parent`: the task its foreman.dev/parent label names; `labelled`: the
    tasks that label names that parent of; `agent_of`: the Agents of its namespace."""
    if not subtasks.is_child(task) or task.phase in TERMINAL_PHASES or task.spec.cancel:
        return None
    if task.phase != "Pending":
        if parent is None or not subtasks.owned_by(task, parent):
            return CancelChild("its parent task is gone")
        if parent.spec.cancel or parent.status.failure_reason == reasons.CANCELLED:
            return CancelChild(f"its parent task {parent.name} was cancelled")
        return None
    agent = agent_of.get(parent.spec.agent_ref or "") if parent is not None else None
    refused = subtasks.refusal(task, parent, agent.subtasks if agent else None, labelled)
    return Fail(refused.reason, refused.message) if refused is not None else None
