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

    NB: a task that was never blocked gets no Blocked condition at all: each condition costs the apiserver CPU on every
    later write of the task (docs/design.md, "Measured").
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


def unblocked_reason(task: AgenticTask) -> str:
    """Why a Blocked task no longer is: the opposite of what blocked it (a node now fits, or what it waited for came:
    dependencies, its Agent)."""
    current = find_condition(task.status.conditions, reasons.BLOCKED)
    if current is not None and current.reason == reasons.NO_FITTING_NODE:
        return reasons.FITTING_NODE_AVAILABLE
    return reasons.DEPENDENCIES_MET


def blocked(task: AgenticTask, now: datetime, why: Blocked | None) -> dict[str, Any]:
    """Stay Pending, with condition Blocked saying why it cannot be placed (or, with None, that it no longer is)."""
    update: ConditionUpdate = (
        (reasons.BLOCKED, "True", why.reason, why.message)
        if why
        else (reasons.BLOCKED, "False", unblocked_reason(task), "")
    )
    return {
        "phase": "Pending",
        "observedGeneration": task.metadata.generation,
        "conditions": with_conditions(task, now, update),
    }


def needs_blocked_write(task: AgenticTask, why: Blocked | None) -> bool:
    """Whether `blocked` would change anything (so an unchanged Blocked task costs no write)."""
    current = find_condition(task.status.conditions, reasons.BLOCKED)
    if why is None:
        return current is not None and current.status == "True"
    return current is None or current.status != "True" or (current.reason, current.message) != (why.reason, why.message)
