"""Status merge-patch bodies that controller and worker both write (pure: task and time in, dict out).

Conditions are a list, which a merge patch replaces whole, so each body carries the full updated list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from foreman.api import reasons
from foreman.api.base import ConditionStatus, find_condition, set_condition
from foreman.api.envelope import ResultEnvelope, Verdict
from foreman.api.resources import AgenticTask

ConditionUpdate = tuple[str, ConditionStatus, str, str]  # type, status, reason, message


def wire_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def with_conditions(task: AgenticTask, now: datetime, *updates: ConditionUpdate) -> list[dict[str, Any]]:
    """The task's conditions with `updates` applied."""
    conditions = task.status.conditions
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


def failed(
    task: AgenticTask,
    now: datetime,
    reason: str,
    message: str,
    *,
    verdict: Verdict = "INCOMPLETE",
    result: ResultEnvelope | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "phase": "Failed",
        "verdict": verdict,
        "failureReason": reason,
        "finishedAt": wire_time(now),
        "observedGeneration": task.metadata.generation,
        "conditions": with_conditions(task, now, *_stopped(task, reason, message)),
    }
    if result is not None:
        body["result"] = result.to_wire()
    return body


def _stopped(task: AgenticTask, reason: str, message: str) -> list[ConditionUpdate]:
    updates: list[ConditionUpdate] = [(reasons.FINISHED, "True", reason, message)]
    if task.phase == "Running":
        updates.insert(0, (reasons.RUNNING, "False", reason, message))
    blocked = find_condition(task.status.conditions, reasons.BLOCKED)
    if blocked is not None and blocked.status == "True":
        # NB: a failed task waits for nothing; a stale "waiting for ..." would contradict its failure reason
        updates.insert(0, (reasons.BLOCKED, "False", reason, message))
    return updates


def requeued(
    task: AgenticTask,
    now: datetime,
    reason: str,
    message: str,
    *,
    count_attempt: bool,
    not_before: datetime | None = None,
    claim_expired: bool = False,
) -> dict[str, Any]:
    """Back to Pending, assignment cleared (null deletes a field in a merge patch)."""
    updates: list[ConditionUpdate] = [(reasons.SCHEDULED, "False", reason, message)]
    if task.phase == "Running":
        updates.append((reasons.RUNNING, "False", reason, message))
    if claim_expired:
        updates.append((reasons.CLAIM_EXPIRED, "True", reason, message))
    return {
        "phase": "Pending",
        "assignedNode": None,
        "claimedBy": None,
        "claimedAt": None,
        "startedAt": None,
        "notBefore": wire_time(not_before) if not_before else None,
        "attempts": task.status.attempts + (1 if count_attempt else 0),
        "conditions": with_conditions(task, now, *updates),
    }
