"""The review step (pure): when an agent's GO goes to its reviewer, what the reviewer is shown, and what its end
makes of the task's verdict. A reviewer that could not verify (no tool call, out of turns, an error, any answer that
is not a clear GO with reasons) yields NO-GO, never GO (LLMKube #1801)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from foreman.api.models.envelope import MAX_REASONS, ResultEnvelope, ReviewRecord, ReviewVerdict, TaskKind
from foreman.api.models.gates import GateResult
from foreman.api.models.pullrequests import PullRequestPolicy
from foreman.api.models.review import MAX_DIFF, MAX_SUMMARY, ReviewRef, ReviewStage

DIFF_KEY = "diff"
"""The author's envelope `extra` key that carries its diff to the review stage (moved into status.review)."""
REVIEW_PROMPT = """You review another agent's change before it is proposed. Judge whether the change does what the
task asks, correctly and safely. You may read the workspace (a checkout of the change where it says so). Call
submit_result with verdict GO only if you verified the change is right, else NO-GO; in summary give your reasons."""
"""The reviewer's system prompt where its Agent has none of its own."""


@dataclass(frozen=True)
class Judged:
    verdict: ReviewVerdict
    reasons: str


def stage_for(
    ref: ReviewRef | None, envelope: ResultEnvelope | None, *, model: str | None, pull_request: PullRequestPolicy
) -> ReviewStage | None:
    """The review stage an attempt's end begins, or None: only a GO (whose gates passed: `rules.gates_unmet` made
    sure) of a task with a review that is not in review already."""
    if ref is None or envelope is None or envelope.verdict != "GO" or envelope.failure_reason is not None:
        return None
    extra = envelope.extra
    changed = extra.get("changedFiles")
    diff = extra.get(DIFF_KEY)
    return ReviewStage(
        agent_ref=ref.agent_ref,
        branch=_text(extra.get("branch")),
        commit=_text(extra.get("commit")),
        changed_files=[str(path) for path in changed][:1000] if isinstance(changed, list) else [],
        diff=bounded_diff(diff if isinstance(diff, str) else ""),
        summary=envelope.summary[:MAX_SUMMARY],
        model=model,
        gates=list(envelope.gates),
        fix_rounds=envelope.fix_rounds,
        pull_request=pull_request,
        children=list(envelope.children),
    )


def bounded_diff(diff: str) -> str:
    if len(diff) <= MAX_DIFF:
        return diff
    return diff[:MAX_DIFF] + "\n[diff cut: longer than 64 KiB]"


def prompt(task_prompt: str, stage: ReviewStage, *, workspace: str) -> str:
    """The reviewer's first message: the task it reviews, where the change is, the agent's summary, each gate's
    result and the diff."""
    parts = [
        "The task the agent was given:\n" + task_prompt,
        workspace,
        "What the agent said of its work:\n" + (stage.summary.strip() or "(nothing)"),
        gates_said(stage.gates, stage.fix_rounds),
    ]
    if stage.changed_files:
        parts.append("Files it changed: " + ", ".join(stage.changed_files[:100]))
    parts.append("The diff:\n" + (stage.diff if stage.diff.strip() else "(empty: the agent changed no file)"))
    return "\n\n".join(parts)


def gates_said(gates: Sequence[GateResult], fix_rounds: int) -> str:
    if not gates:
        return "No verify gates ran."
    rounds = f" after {fix_rounds} fix round(s)" if fix_rounds else ""
    lines = [f"The verify gates (run by the worker, not by the agent){rounds}:"]
    for gate in gates:
        exit_status = "killed" if gate.exit_status is None else f"exit {gate.exit_status}"
        lines.append(f"- {gate.name}: {gate.status} ({exit_status})")
    return "\n".join(lines)


def judged(verdict: str, *, submitted: bool, summary: str, ended: str) -> Judged:
    """The reviewer's answer: GO only when it submitted GO with reasons; anything else is NO-GO, saying why
    (`ended`: how its conversation ended when it did not submit)."""
    reasons = summary.strip()
    if submitted and verdict == "GO" and reasons:
        return Judged("GO", reasons[:MAX_REASONS])
    if submitted and verdict == "NO-GO":
        return Judged("NO-GO", (reasons or "the reviewer gave no reasons")[:MAX_REASONS])
    if submitted and verdict == "GO":
        return Judged("NO-GO", "the reviewer answered GO without reasons: not a verified GO")
    why = f"answered {verdict}" if submitted else f"ended {ended}"
    said = f": {reasons}" if reasons else ""
    return Judged("NO-GO", f"the reviewer could not verify ({why}){said}"[:MAX_REASONS])


def record(stage: ReviewStage, model: str | None, answer: Judged) -> ReviewRecord:
    return ReviewRecord(agent_ref=stage.agent_ref, model=model, verdict=answer.verdict, reasons=answer.reasons)


def unverified(stage: ReviewStage, *, kind: TaskKind, reason: str, message: str, elapsed: float) -> ResultEnvelope:
    """The envelope of a review attempt that ended without one (an error, a timeout, a cancel, no retry left):
    NO-GO, the work's gates, branch and children kept."""
    answer = judged("", submitted=False, summary=message, ended=reason)
    return ResultEnvelope(
        kind=kind,
        verdict="NO-GO",
        summary=stage.summary,
        failure_reason=reason,
        elapsed_sec=round(max(0.0, elapsed), 3),
        gates=list(stage.gates),
        fix_rounds=stage.fix_rounds,
        extra=work_of(stage),
        review=record(stage, None, answer),
        children=list(stage.children),
    )


def work_of(stage: ReviewStage) -> dict[str, object]:
    """What the final envelope's `extra` keeps of the reviewed work: its branch, commit and changed files."""
    kept: dict[str, object] = {"branch": stage.branch, "commit": stage.commit, "changedFiles": stage.changed_files}
    return {key: value for key, value in kept.items() if value}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
