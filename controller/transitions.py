"""Status merge-patch bodies for the transitions only the controller makes (pure: task and time in, dict out).

Failing and requeueing are shared with the worker and live in `foreman.api.status`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from foreman.api import reasons
from foreman.api.base import find_condition
from foreman.api.resources import AgenticTask
from foreman.api.status import ConditionUpdate, with_conditions
from foreman.controller.rules import Blocked


def scheduled(task: AgenticTask, node: str, now: datetime) -> dict[str, Any]:
    """Pending → Scheduled on `node`; a Blocked condition, if the task ever had one, turns False.

    NB: a task that was never blocked gets no Blocked condition at all: every condition is carried, decoded and
    re-encoded by the apiserver on each later write of the task (about 0.5 ms of its CPU each, bench/).
    """
    updates: list[ConditionUpdate] = [
        (reasons.SCHEDULED, "True", reasons.FLEET_NODE_ASSIGNED, f"assigned to FleetNode {node}")
    ]
    if find_condition(task.status.conditions, reasons.BLOCKED) is not None:
        updates.insert(0, (reasons.BLOCKED, "False", reasons.FLEET_NODE_ASSIGNED, ""))
    return {
        "phase": "Scheduled",
        "assignedNode": node,
        "notBefore": None,
        "observedGeneration": task.metadata.generation,
        "conditions": with_conditions(task, now, *updates),
    }


def pending(task: AgenticTask, now: datetime, blocked: Blocked | None) -> dict[str, Any]:
    """Stay Pending, with condition Blocked saying why it cannot be placed (or that it no longer is blocked)."""
    update: ConditionUpdate = (
        (reasons.BLOCKED, "True", blocked.reason, blocked.message)
        if blocked
        else (reasons.BLOCKED, "False", reasons.DEPENDENCIES_MET, "")
    )
    return {
        "phase": "Pending",
        "observedGeneration": task.metadata.generation,
        "conditions": with_conditions(task, now, update),
    }


def needs_pending_write(task: AgenticTask, blocked: Blocked | None) -> bool:
    """Whether `pending` would change anything (so an unchanged Blocked task costs no write)."""
    current = find_condition(task.status.conditions, reasons.BLOCKED)
    if blocked is None:
        return current is not None and current.status == "True"
    return (
        current is None
        or current.status != "True"
        or (current.reason, current.message) != (blocked.reason, blocked.message)
    )
