"""The worker's decisions as pure functions: what it may claim, what it recovers at start, and which move an
outcome is. Every phase change the worker makes is chosen here (`foreman.api.lifecycle.status` writes the bodies)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from foreman.api.lifecycle import reasons, status
from foreman.api.models.envelope import PASSING_VERDICTS, Attempt, ResultEnvelope, Usage
from foreman.api.models.gates import Gate
from foreman.api.models.pullrequests import PullRequestPolicy
from foreman.api.models.review import ReviewRef, ReviewStage
from foreman.api.models.tasks import AgenticTask
from foreman.api.runtime.backoff import backoff_delay
from foreman.worker import escalation, review

RETRYABLE_REASONS = frozenset({reasons.EXECUTOR_ERROR, reasons.TIMEOUT})
"""Failures worth another attempt (the executor crashed or ran out of time). A contract violation, an unknown
executor or a cancel would fail the same way again."""


def claimable(task: AgenticTask, node: str) -> bool:
    """Status is the truth: only a task whose status says Scheduled on this node, not cancelled or being deleted."""
    return (
        task.phase == "Scheduled"
        and task.status.assigned_node == node
        and not task.spec.cancel
        and task.metadata.deletion_timestamp is None
    )


@dataclass(frozen=True)
class Outcome:
    """How an execution ended: an envelope on success, a failure reason otherwise (maybe with an envelope too)."""

    envelope: ResultEnvelope | None = None
    reason: str | None = None
    message: str = ""
    usage: Usage | None = None
    """What the attempt consumed as its executor last reported (kept where no envelope says: a timeout, a cancel)."""
    transcript_ref: str | None = None
    """The attempt's transcript, when its executor published one."""
    model: str | None = None
    """The model the attempt ran with (`AgenticTask.model_with`)."""
    ladder: tuple[str, ...] = ()
    """The task's escalation ladder (`AgenticTask.escalation_with`)."""
    review: ReviewRef | None = None
    """The review its GO gets (`AgenticTask.review_with`)."""
    pull_request: PullRequestPolicy = field(default_factory=PullRequestPolicy)
    """The task's pull request policy (`AgenticTask.pull_request_with`): the review stage keeps it."""


def claim(task: AgenticTask, now: datetime, claimant: str) -> dict[str, Any]:
    """Scheduled -> Running for `claimant` (written with the task's resourceVersion: one claimer wins)."""
    return status.claimed(task, now, claimant)


def recovered(task: AgenticTask, node: str, now: datetime) -> dict[str, Any] | None:
    """At start: a task Running on this node from the worker's previous life goes back to Pending (the attempt
    counts), since nobody executes it; None for any other task."""
    if task.phase != "Running" or task.status.assigned_node != node:
        return None
    message = f"worker on {node} restarted while the task ran"
    return status.requeued(task, now, reasons.WORKER_RESTART_RECOVERY, message, count_attempt=True)


def still_running_here(task: AgenticTask, claimed: AgenticTask, node: str) -> bool:
    """Before a terminal write is tried again: is the task the one we claimed, still Running on this node?"""
    return task.metadata.uid == claimed.metadata.uid and task.phase == "Running" and task.status.assigned_node == node


def claimed_by_us(task: AgenticTask, claimant: str) -> bool:
    """After a 409 on our claim: did our own write land (the answer was lost, the retry conflicted with it)?"""
    return task.phase == "Running" and task.status.claimed_by == claimant


def gates_unmet(gates: Sequence[Gate], outcome: Outcome) -> Outcome:
    """The outcome, unless it passes a task with verify gates without a passed result for each, in order: that is a
    contract violation, whatever executor returned it (only the agent executor runs gates), never a pass."""
    envelope = outcome.envelope
    if not gates or envelope is None or envelope.verdict not in PASSING_VERDICTS:
        return outcome
    if [g.name for g in envelope.gates if g.passed] == [g.name for g in gates]:
        return outcome
    message = f"verdict {envelope.verdict} without a passed result for each gate ({', '.join(g.name for g in gates)})"
    return Outcome(reason=reasons.EXECUTOR_CONTRACT_VIOLATION, message=message, usage=outcome.usage,
                   transcript_ref=outcome.transcript_ref)  # fmt: skip


def usage_of(envelope: ResultEnvelope | None) -> Usage | None:
    """The usage in an envelope whose `extra.usage` has the Usage shape (the agent executor's), else None."""
    try:
        return Usage.model_validate(envelope.extra["usage"]) if envelope is not None else None
    except (KeyError, ValidationError):
        return None


def attempts_of(
    task: AgenticTask, outcome: Outcome, now: datetime, *, ended_as: str | None = None
) -> tuple[list[Attempt], Usage | None]:
    """The task's attempts with this one ended as the outcome says (`ended_as`: how, where not its reason: an
    escalated attempt reads `Escalated`), and its usage: the envelope's, else what the executor last reported (a
    timed-out or cancelled attempt's usage is not lost)."""
    usage = usage_of(outcome.envelope) or outcome.usage
    verdict = outcome.envelope.verdict if outcome.envelope is not None else None
    ended = status.ended_attempts(
        task,
        now,
        ended_as or outcome.reason or reasons.COMPLETED,
        verdict=verdict,
        usage=usage,
        transcript_ref=outcome.transcript_ref,
        model=outcome.model,
    )
    return ended, usage


def escalation_for(task: AgenticTask, outcome: Outcome) -> escalation.Step | None:
    """The escalation the outcome calls for: an envelope came back (the executor ended by itself) whose end a bigger
    model of the task's ladder may do better."""
    if outcome.reason is not None:
        return None
    number = task.status.attempt_history[-1].number if task.status.attempt_history else 1
    return escalation.next_step(outcome.ladder, outcome.model, task.status.escalation, outcome.envelope, number=number)


def review_for(task: AgenticTask, outcome: Outcome) -> ReviewStage | None:
    """The review stage the outcome begins: a GO (gates passed) of a task with a review, not yet reviewed."""
    if outcome.reason is not None or task.reviewing:
        return None
    return review.stage_for(outcome.review, outcome.envelope, model=outcome.model, pull_request=outcome.pull_request)


def finished(
    task: AgenticTask, outcome: Outcome, now: datetime, *, backoff: float, backoff_max: float
) -> dict[str, Any]:
    """The terminal write for an outcome, or back to Pending: at once for a drain's hand-back (no attempt counted:
    the task did nothing wrong) or an escalation to the next model of its ladder, with a backoff when a retry is
    left."""
    step = escalation_for(task, outcome)
    attempts, usage = attempts_of(task, outcome, now, ended_as=reasons.ESCALATED if step else None)
    used = {"usage": usage.to_wire()} if usage is not None else {}
    if outcome.reason == reasons.NODE_DRAINING:
        return status.requeued(task, now, outcome.reason, outcome.message, count_attempt=False, attempts=attempts)
    if step:
        # NB: not counted against retries: the ladder bounds escalations
        return {**status.requeued(task, now, reasons.ESCALATED, step.message, count_attempt=False, attempts=attempts,
                                  escalation=step.escalation), **used}  # fmt: skip
    if stage := review_for(task, outcome):
        message = f"GO with its gates passed; review by Agent {stage.agent_ref}"
        return {**status.requeued(task, now, reasons.REVIEWING, message, count_attempt=False, attempts=attempts,
                                  review=stage), **used}  # fmt: skip
    if outcome.reason is None:
        assert outcome.envelope is not None
        return status.succeeded(task, now, outcome.envelope, used, attempts=attempts)
    if outcome.reason in RETRYABLE_REASONS and task.status.attempts < task.spec.retries:
        delay = backoff_delay(task.status.attempts, backoff, backoff_max)
        message = f"{outcome.message}; retry {task.status.attempts + 1} of {task.spec.retries} in {delay:g} s"
        return status.requeued(
            task, now, outcome.reason, message, count_attempt=True, not_before=now + timedelta(seconds=delay),
            attempts=attempts,
        )  # fmt: skip
    # NB: the time the work ran, from the claim, so a task that timed out after 2 s or was cancelled after 5 s of
    # work does not read elapsedSec 0
    ran_for = (now - task.status.started_at).total_seconds() if task.status.started_at else 0.0
    if task.status.review is not None and outcome.envelope is None:
        # NB: a reviewer that could not answer is a NO-GO, never a GO (nor an INCOMPLETE that hides the review)
        envelope = review.unverified(task.status.review, kind=task.spec.kind, reason=outcome.reason,
                                     message=outcome.message, elapsed=ran_for)  # fmt: skip
        body = status.failed(task, now, outcome.reason, outcome.message, verdict="NO-GO", result=envelope,
                             attempts=attempts)  # fmt: skip
        return {**body, **used}
    envelope = outcome.envelope or ResultEnvelope(
        kind=task.spec.kind,
        verdict="INCOMPLETE",
        summary=outcome.message[:4096],
        failure_reason=outcome.reason,
        elapsed_sec=round(max(0.0, ran_for), 3),
    )
    body = status.failed(
        task, now, outcome.reason, outcome.message, verdict="INCOMPLETE", result=envelope, attempts=attempts
    )
    return {**body, **used}
