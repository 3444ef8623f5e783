"""What the controller does with an agent's child task, as a pure function: refuse it before it is placed (what
admission cannot see: the parent, its Agent, the counts), give one an older version made its parent's
requiredCapability before it is placed, or cancel it when its parent was cancelled or is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from foreman.api.lifecycle import reasons, subtasks
from foreman.api.models.agents import AgentSpec
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.controller.rules import Fail

REFUSALS = (reasons.SUBTASK_LIMIT_EXCEEDED, reasons.SUBTASK_NOT_ALLOWED, reasons.PARENT_NOT_RUNNING)


@dataclass(frozen=True)
class AmendChild:
    """A merge patch of a child's spec: spec.cancel on one that holds a node (its worker stops it; one Scheduled, the
    next pass fails), or its parent's requiredCapability on a Pending one an older version made (placed once
    written); `reason` and `message`: its Event's."""

    spec: dict[str, Any]
    reason: str
    message: str


def cancel_child(message: str) -> AmendChild:
    return AmendChild({"cancel": True}, reasons.CANCELLED, message)


def child_decision(
    task: AgenticTask,
    parent: AgenticTask | None,
    labelled: Iterable[AgenticTask],
    agent_of: Mapping[str, AgentSpec],
) -> Fail | AmendChild | None:
    """For an agent-made `task`: Fail (Pending and refused), AmendChild (Pending and made by an older version: its
    parent's requiredCapability; holding a node, its parent cancelled or gone: cancelled), or None (nothing to do
    here). `parent`: the task its foreman.dev/parent label names; `labelled`: the tasks that label names that parent
    of; `agent_of`: the Agents of its namespace."""
    if not subtasks.is_child(task) or task.phase in TERMINAL_PHASES or task.spec.cancel:
        return None
    if task.phase != "Pending":
        if parent is None or not subtasks.owned_by(task, parent):
            return cancel_child("its parent task is gone")
        if parent.spec.cancel or parent.status.failure_reason == reasons.CANCELLED:
            return cancel_child(f"its parent task {parent.name} was cancelled")
        return None
    agent = agent_of.get(parent.spec.agent_ref or "") if parent is not None else None
    inheriting = subtasks.inheriting(task, parent)
    refused = subtasks.refusal(inheriting or task, parent, agent.subtasks if agent else None, labelled)
    if refused is not None:
        return Fail(refused.reason, refused.message)
    if inheriting is None or parent is None:
        return None
    capability = inheriting.spec.required_capability
    return AmendChild({"requiredCapability": capability.to_wire()}, reasons.CAPABILITY_INHERITED,
                      f"made before children inherited their parent's requiredCapability: {parent.name}'s, "
                      f"{capability.to_wire()}")  # fmt: skip
