"""Escalation (pure): whether an agent attempt's end sends its task to the next model of its ladder, and what the
next attempt is told of this one. `rules.finished` applies it; placement then follows the task's new model
(`AgenticTask.model_with`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from foreman.api.lifecycle import reasons
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.escalation import MAX_PREVIOUS, Escalation

ESCALATING_REASONS = frozenset(
    {reasons.NO_TOOL_CALL, reasons.MAX_TURNS_EXCEEDED, reasons.CONTEXT_EXCEEDED, reasons.GATE_FAILED}
)
"""How an attempt ends when its model could not do the work (a bigger one may): no tool call, out of turns or of
context, gates still failing (GATE-FAIL)."""
TAIL = 1200
FILES = 40


@dataclass(frozen=True)
class Step:
    """Escalate: the next attempt runs with `escalation.model`; `reason` says why (the metric's label)."""

    escalation: Escalation
    from_model: str
    reason: str

    @property
    def message(self) -> str:
        """What the condition and the Event say of it."""
        return f"escalated from {self.from_model} to {self.escalation.model} ({self.reason})"


def trigger(envelope: ResultEnvelope | None) -> str | None:
    """Why the attempt's end calls for a bigger model, or None: its failureReason, GATE-FAIL's `GateFailed` too."""
    return None if envelope is None else trigger_of(envelope.verdict, envelope.failure_reason)


def trigger_of(verdict: str, failure_reason: str | None) -> str | None:
    if verdict == "GATE-FAIL":
        return reasons.GATE_FAILED
    return failure_reason if failure_reason in ESCALATING_REASONS else None


def escalates(
    ladder: Sequence[str], model: str | None, at: Escalation | None, verdict: str, failure_reason: str | None
) -> bool:
    """Whether an attempt that ends so goes on to the ladder's next model (its outcome is then not the task's: the
    agent opens no draft pull request for it, and leaves the next model the base commit)."""
    here = position(ladder, model, at)
    return trigger_of(verdict, failure_reason) is not None and here is not None and here + 1 < len(ladder)


def position(ladder: Sequence[str], model: str | None, at: Escalation | None) -> int | None:
    """Where the model an attempt ran with stands on the ladder: the step the task escalated to, else the first entry
    it matches; None when it is not on the ladder (nothing says which model is bigger than it)."""
    if at is not None and at.step < len(ladder) and ladder[at.step] == model:
        return at.step
    return ladder.index(model) if model in ladder else None


def next_step(
    ladder: Sequence[str], model: str | None, at: Escalation | None, envelope: ResultEnvelope | None, *, number: int
) -> Step | None:
    """The escalation an attempt's end calls for (attempt `number` ran with `model`), or None: the outcome stands
    (no trigger, a model off the ladder, or the ladder's end)."""
    why = trigger(envelope)
    here = position(ladder, model, at)
    if why is None or here is None or here + 1 >= len(ladder) or model is None:
        return None
    assert envelope is not None
    previous = summary(envelope, model=model, number=number, reason=why)
    return Step(Escalation(model=ladder[here + 1], step=here + 1, previous=previous), from_model=model, reason=why)


def summary(envelope: ResultEnvelope, *, model: str, number: int, reason: str) -> str:
    """What the next model is told of this attempt: how it ended, its last gate failure's name and output tail, the
    files it changed (where the envelope says), bounded."""
    lines = [f"Attempt {number} with model {model} ended {envelope.verdict} ({reason})."]
    failed = next((gate for gate in reversed(envelope.gates) if gate.status in ("failed", "timedOut")), None)
    if failed is not None:
        exit_status = "killed" if failed.exit_status is None else f"exit status {failed.exit_status}"
        lines.append(
            f"Its last gate failure: {failed.name} ({exit_status}), output tail:\n{failed.output_tail[-TAIL:]}"
        )
    elif envelope.summary:
        lines.append(f"It said: {envelope.summary[:TAIL]}")
    changed = envelope.extra.get("changedFiles")
    if isinstance(changed, list) and changed:
        shown = ", ".join(str(path) for path in changed[:FILES])
        more = f" and {len(changed) - FILES} more" if len(changed) > FILES else ""
        lines.append(f"Files it changed: {shown}{more}.")
    lines.append("You start again in a fresh workspace.")
    return "\n".join(lines)[:MAX_PREVIOUS]
