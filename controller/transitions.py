"""Status merge-patch bodies for every transition the controller makes (pure: task and time in, dict out).

Conditions are a list, which a merge patch replaces whole, so each body carries the full updated list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from foreman.api import reasons
from foreman.api.base import ConditionStatus, set_condition
from foreman.api.resources import AgenticTask
from foreman.controller.reclaim import GiveUp, Requeue
from foreman.controller.rules import Blocked, Fail


def wire_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _conditions(task: AgenticTask, now: datetime, *updates: tuple[str, ConditionStatus, str, str]) -> list[Any]:
    conditions = task.status.conditions
    if not any(condition.type == reasons.ACCEPTED for condition in conditions):
        # Normalization, folded into the first write the task needs anyway.
        conditions = set_condition(conditions, type=reasons.ACCEPTED, status="True", reason=reasons.NEW_TASK, now=now)
    for type_, status, reason, message in updates:
        conditions = set_condition(
            conditions,
            type=type_,
            status=status,
            reason=reason,
            message=message,
            now=now,
            observed_generation=task.metadata.generation,
        )
    return [condition.to_wire() for condition in conditions]


def scheduled(task: AgenticTask, node: str, now: datetime) -> dict[str, Any]:
    """Pending → Scheduled on `node`."""
    return {
        "phase": "Scheduled",
        "assignedNode": node,
        "observedGeneration": task.metadata.generation,
        "conditions": _conditions(
            task,
            now,
            (reasons.BLOCKED, "False", reasons.FLEET_NODE_ASSIGNED, ""),
            (reasons.SCHEDULED, "True", reasons.FLEET_NODE_ASSIGNED, f"assigned to FleetNode {node}"),
        ),
    }


def pending(task: AgenticTask, now: datetime, blocked: Blocked | None) -> dict[str, Any]:
    """Stay (or become) Pending, with condition Blocked saying why it cannot be placed."""
    update: tuple[str, ConditionStatus, str, str] = (
        (reasons.BLOCKED, "True", blocked.reason, blocked.message)
        if blocked
        else (reasons.BLOCKED, "False", reasons.DEPENDENCIES_MET, "")
    )
    return {
        "phase": "Pending",
        "observedGeneration": task.metadata.generation,
        "conditions": _conditions(task, now, update),
    }


def needs_pending_write(task: AgenticTask, blocked: Blocked | None) -> bool:
    """Whether `pending` would change anything (so an unchanged Blocked task costs no write)."""
    current = next((c for c in task.status.conditions if c.type == reasons.BLOCKED), None)
    if blocked is None:
        return current is not None and current.status == "True"
    return (
        current is None
        or current.status != "True"
        or (current.reason, current.message) != (blocked.reason, blocked.message)
    )


def failed(task: AgenticTask, now: datetime, failure: Fail | GiveUp) -> dict[str, Any]:
    verdict = failure.verdict if isinstance(failure, Fail) else "INCOMPLETE"
    return {
        "phase": "Failed",
        "verdict": verdict,
        "failureReason": failure.reason,
        "finishedAt": wire_time(now),
        "observedGeneration": task.metadata.generation,
        "conditions": _conditions(task, now, (reasons.FINISHED, "True", failure.reason, failure.message)),
    }


def requeued(task: AgenticTask, now: datetime, requeue: Requeue) -> dict[str, Any]:
    """Back to Pending from a lost or draining node; the assignment is cleared (null deletes in a merge patch)."""
    return {
        "phase": "Pending",
        "assignedNode": None,
        "claimedAt": None,
        "startedAt": None,
        "attempts": task.status.attempts + (1 if requeue.expired else 0),
        "conditions": _conditions(
            task,
            now,
            (reasons.SCHEDULED, "False", requeue.reason, requeue.message),
            (reasons.RUNNING, "False", requeue.reason, requeue.message),
            (reasons.CLAIM_EXPIRED, "True" if requeue.expired else "False", requeue.reason, requeue.message),
        ),
    }
