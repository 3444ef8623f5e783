"""How a task moves (README, "How a task moves"), as the status merge-patch body of every move: pure, task and time
in, dict out. The controller and the worker decide when (`controller.rules`, `controller.plan`, `worker.rules`); the
bodies of all moves are here, so the state machine of an AgenticTask is one file:

    Pending --blocked/unblocked--> Pending --placed--> Scheduled --claimed--> Running --succeeded--> Succeeded
    Scheduled | Running --requeued--> Pending          any but Succeeded --failed--> Failed

Conditions are a list, which a merge patch replaces whole, so each body carries the full updated list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from foreman.api.lifecycle import reasons
from foreman.api.models.base import ConditionStatus, find_condition, set_condition, wire_time
from foreman.api.models.envelope import MAX_ATTEMPTS_KEPT, Attempt, ResultEnvelope, Usage, Verdict
from foreman.api.models.escalation import Escalation
from foreman.api.models.review import ReviewStage
from foreman.api.models.tasks import AgenticTask

ConditionUpdate = tuple[str, ConditionStatus, str, str]  # type, status, reason, message


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


def placed(task: AgenticTask, node: str, now: datetime) -> dict[str, Any]:
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


def blocked(task: AgenticTask, now: datetime, reason: str, message: str) -> dict[str, Any]:
    """Stay Pending, with condition Blocked saying why it cannot be placed."""
    return _pending(task, now, (reasons.BLOCKED, "True", reason, message))


def unblocked(task: AgenticTask, now: datetime) -> dict[str, Any]:
    """Stay Pending, no longer blocked (placement comes next)."""
    return _pending(task, now, (reasons.BLOCKED, "False", unblocked_reason(task), ""))


def _pending(task: AgenticTask, now: datetime, update: ConditionUpdate) -> dict[str, Any]:
    return {
        "phase": "Pending",
        "observedGeneration": task.metadata.generation,
        "conditions": with_conditions(task, now, update),
    }


def unblocked_reason(task: AgenticTask) -> str:
    """Why a Blocked task no longer is: the opposite of what blocked it (a node now fits, its queue is below its cap,
    or what it waited for came: dependencies, its Agent, its TaskQueue)."""
    current = find_condition(task.status.conditions, reasons.BLOCKED)
    reason = current.reason if current is not None else None
    if reason in (reasons.NO_FITTING_NODE, reasons.GATE_NOT_ALLOWED):
        return reasons.FITTING_NODE_AVAILABLE
    if reason == reasons.QUEUE_FULL:
        return reasons.QUEUE_HAS_ROOM
    return reasons.DEPENDENCIES_MET


def needs_blocked_write(task: AgenticTask, why: tuple[str, str] | None) -> bool:
    """Whether `blocked` with this (reason, message), or `unblocked` for None, would change anything (so an unchanged
    Blocked task costs no write)."""
    current = find_condition(task.status.conditions, reasons.BLOCKED)
    if why is None:
        return current is not None and current.status == "True"
    return current is None or current.status != "True" or (current.reason, current.message) != why


def claimed(task: AgenticTask, now: datetime, claimant: str) -> dict[str, Any]:
    """Scheduled → Running, a new attempt begun; sent with the task's resourceVersion, so only one claimer can win."""
    history = task.status.attempt_history
    number = history[-1].number + 1 if history else 1
    begun = Attempt(number=number, node=task.status.assigned_node, started_at=now)
    return {
        "phase": "Running",
        "attemptHistory": _wire([*history, begun][-MAX_ATTEMPTS_KEPT:]),
        "claimedBy": claimant,
        "claimedAt": wire_time(now),
        "startedAt": wire_time(now),
        "conditions": with_conditions(
            task, now, (reasons.RUNNING, "True", reasons.CLAIMED, f"claimed by {task.status.assigned_node}")
        ),
    }


def ended_attempts(
    task: AgenticTask,
    now: datetime,
    outcome: str,
    *,
    verdict: Verdict | None = None,
    usage: Usage | None = None,
    transcript_ref: str | None = None,
    model: str | None = None,
) -> list[Attempt]:
    """The attempts with the one under way (the latest, not finished) ended: its outcome, verdict, usage and
    transcript as far as the writer knows them. Unchanged when none is under way (a task never claimed)."""
    history = task.status.attempt_history
    if not history or history[-1].finished_at is not None:
        return list(history)
    update = {"finished_at": now, "outcome": outcome, "verdict": verdict, "usage": usage}
    if transcript_ref is not None:
        update["transcript_ref"] = transcript_ref
    if model is not None:
        update["model"] = model
    return [*history[:-1], history[-1].model_copy(update=update)]


def _wire(attempts: list[Attempt]) -> list[dict[str, Any]]:
    return [attempt.to_wire() for attempt in attempts]


def succeeded(
    task: AgenticTask,
    now: datetime,
    envelope: ResultEnvelope,
    usage: dict[str, Any],
    *,
    attempts: list[Attempt] | None = None,
) -> dict[str, Any]:
    """Running → Succeeded with the executor's envelope (whatever its verdict); `usage`: the `status.usage` body;
    `attempts`: every attempt, this one ended (default: ended as Completed, as far as the task says)."""
    message = envelope.summary[:1024]
    ended = attempts if attempts is not None else ended_attempts(task, now, reasons.COMPLETED, verdict=envelope.verdict)
    return {
        "phase": "Succeeded",
        "verdict": envelope.verdict,
        "result": envelope.model_copy(update={"attempts": ended}).to_wire(),
        "attemptHistory": _wire(ended),
        **usage,
        "finishedAt": wire_time(now),
        "conditions": with_conditions(
            task,
            now,
            (reasons.RUNNING, "False", reasons.COMPLETED, message),
            (reasons.FINISHED, "True", reasons.COMPLETED, message),
        ),
    }


def failed(
    task: AgenticTask,
    now: datetime,
    reason: str,
    message: str,
    *,
    verdict: Verdict = "INCOMPLETE",
    result: ResultEnvelope | None = None,
    attempts: list[Attempt] | None = None,
) -> dict[str, Any]:
    """Any but Succeeded → Failed; `attempts` as for `succeeded` (default: the one under way ended with `reason`).
    Without an executor's envelope (the controller failed it: UpstreamFailed, Cancelled, a timeout) a minimal one says
    why, so every finished task has an envelope to read (`foreman result`, notifications)."""
    ended = attempts if attempts is not None else ended_attempts(task, now, reason, verdict=verdict)
    started = task.status.started_at
    envelope = result or ResultEnvelope(
        kind=task.spec.kind,
        verdict=verdict,
        summary=message[:1024],
        failure_reason=reason,
        elapsed_sec=max((now - started).total_seconds(), 0.0) if started else 0.0,
    )
    body: dict[str, Any] = {
        "phase": "Failed",
        "verdict": verdict,
        "failureReason": reason,
        "result": envelope.model_copy(update={"attempts": ended}).to_wire(),
        "finishedAt": wire_time(now),
        "observedGeneration": task.metadata.generation,
        "conditions": with_conditions(task, now, *_stopped(task, reason, message)),
    }
    if ended != task.status.attempt_history:
        body["attemptHistory"] = _wire(ended)
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
    attempts: list[Attempt] | None = None,
    escalation: Escalation | None = None,
    review: ReviewStage | None = None,
) -> dict[str, Any]:
    """Back to Pending, assignment cleared (null deletes a field in a merge patch); `attempts` as for `succeeded`
    (default: the one under way ended with `reason`); `escalation`: the model the next attempt runs with; `review`:
    the review stage it enters (`work_attempts`: these attempts, `entering`)."""
    ended = attempts if attempts is not None else ended_attempts(task, now, reason)
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
        **({"attemptHistory": _wire(ended)} if ended != task.status.attempt_history else {}),
        **({"escalation": escalation.to_wire()} if escalation is not None else {}),
        **({"review": entering(review, ended).to_wire()} if review is not None else {}),
    }


def entering(stage: ReviewStage, attempts: list[Attempt]) -> ReviewStage:
    """The review stage with the work's `attempts` (the review's begin after them): where and when each ran, all
    that tells which nodes made the task's children and schedules (subtasks.ran_on)."""
    work = [Attempt(number=a.number, node=a.node, started_at=a.started_at, finished_at=a.finished_at) for a in attempts]
    return stage.model_copy(update={"work_attempts": work})
