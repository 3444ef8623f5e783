"""Escalation's decision (pure): every reason x ladder position, the ladder's end, a model off the ladder; how the
worker applies it (back to Pending, retries untouched) and where placement then looks (model_with)."""

import itertools

import pytest

from foreman.api.lifecycle import reasons
from foreman.api.models.agents import AgentSpec
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.escalation import Escalation
from foreman.api.models.gates import GateResult
from foreman.api.models.tasks import AgenticTask
from foreman.worker import escalation
from foreman.worker.agent import conversation
from foreman.worker.escalation import ESCALATING_REASONS, next_step, summary, trigger
from foreman.worker.rules import Outcome, finished
from tests.factories import T0, running_agent_task, task

LADDER = ("small", "medium", "large")
FAILED_GATE = GateResult(name="tests", status="failed", exit_status=1, output_tail="FAILED test_x - assert 1 == 2")


def ended(reason: str) -> ResultEnvelope:
    if reason == reasons.GATE_FAILED:
        return ResultEnvelope(kind="issue-fix", verdict="GATE-FAIL", failure_reason=reason, gates=[FAILED_GATE])
    return ResultEnvelope(kind="issue-fix", verdict="INCOMPLETE", failure_reason=reason, summary="gave up")


@pytest.mark.parametrize(("reason", "here"), list(itertools.product(sorted(ESCALATING_REASONS), range(len(LADDER)))))
def test_each_reason_climbs_one_step_until_the_ladders_end(reason: str, here: int) -> None:
    step = next_step(LADDER, LADDER[here], None, ended(reason), number=1)
    if here == len(LADDER) - 1:
        assert step is None  # the ladder's end: the outcome stands
        return
    assert step is not None
    assert (step.escalation.model, step.escalation.step, step.from_model, step.reason) == (
        LADDER[here + 1], here + 1, LADDER[here], reason,
    )  # fmt: skip
    assert f"model {LADDER[here]}" in step.escalation.previous
    assert reason in step.escalation.previous


@pytest.mark.parametrize(
    "envelope",
    [
        ResultEnvelope(kind="issue-fix", verdict="GO"),
        ResultEnvelope(kind="issue-fix", verdict="NO-GO"),
        ResultEnvelope(kind="issue-fix", verdict="INCOMPLETE", failure_reason="PullRequestFailed"),
        ResultEnvelope(kind="issue-fix", verdict="INCOMPLETE"),
        None,
    ],
)
def test_other_ends_never_escalate(envelope: ResultEnvelope | None) -> None:
    assert trigger(envelope) is None
    assert next_step(LADDER, "small", None, envelope, number=1) is None


def test_a_gate_fail_escalates_whatever_its_failure_reason_says() -> None:
    assert trigger(ResultEnvelope(kind="issue-fix", verdict="GATE-FAIL")) == reasons.GATE_FAILED


@pytest.mark.parametrize("model", ["huge", None])
def test_a_model_off_the_ladder_does_not_escalate(model: str | None) -> None:
    assert next_step(LADDER, model, None, ended(reasons.NO_TOOL_CALL), number=1) is None
    assert next_step((), "small", None, ended(reasons.NO_TOOL_CALL), number=1) is None


def test_the_step_escalated_to_wins_over_the_first_match_of_a_repeated_model() -> None:
    ladder = ("small", "large", "small", "xl")
    at = Escalation(model="small", step=2)
    step = next_step(ladder, "small", at, ended(reasons.MAX_TURNS_EXCEEDED), number=3)
    assert step is not None
    assert (step.escalation.model, step.escalation.step) == ("xl", 3)


def test_the_summary_names_the_last_gate_failure_and_the_changed_files() -> None:
    envelope = ended(reasons.GATE_FAILED).model_copy(update={"extra": {"changedFiles": ["a.py", "b.py"]}})
    said = summary(envelope, model="small", number=2, reason=reasons.GATE_FAILED)
    assert "Attempt 2 with model small ended GATE-FAIL (GateFailed)" in said
    assert "tests (exit status 1)" in said
    assert "FAILED test_x" in said
    assert "a.py, b.py" in said
    long = ended(reasons.GATE_FAILED).model_copy(update={"extra": {"changedFiles": [f"f{i}" for i in range(5000)]}})
    assert len(summary(long, model="small", number=1, reason=reasons.GATE_FAILED)) <= 4096


def running(at: Escalation | None = None, **spec: object) -> AgenticTask:
    return running_agent_task({"escalation": at.to_wire()} if at is not None else None, **spec)


def test_the_worker_requeues_for_the_next_model_without_spending_a_retry() -> None:
    current = running(retries=0, escalation=list(LADDER))
    outcome = Outcome(envelope=ended(reasons.NO_TOOL_CALL), model="small", ladder=LADDER)
    patch = finished(current, outcome, T0, backoff=5, backoff_max=300)
    assert (patch["phase"], patch["attempts"], patch["escalation"]["model"]) == ("Pending", 0, "medium")
    assert patch["attemptHistory"][-1]["model"] == "small"
    assert patch["attemptHistory"][-1]["outcome"] == reasons.ESCALATED


def test_at_the_ladders_end_the_attempts_outcome_is_the_tasks() -> None:
    current = running(Escalation(model="large", step=2), escalation=list(LADDER))
    outcome = Outcome(envelope=ended(reasons.GATE_FAILED), model="large", ladder=LADDER)
    patch = finished(current, outcome, T0, backoff=5, backoff_max=300)
    assert (patch["phase"], patch["verdict"]) == ("Succeeded", "GATE-FAIL")
    assert patch["attemptHistory"][-1]["model"] == "large"


def test_the_escalated_model_is_the_one_placement_and_the_worker_use() -> None:
    agent = AgentSpec(escalation=list(LADDER))
    fresh = task("t", executor="agent")
    assert fresh.model_with(agent) == "small"  # no model named: the ladder's first
    assert task("t", modelRef="medium").model_with(agent) == "medium"
    moved = running(Escalation(model="large", step=2, previous="Attempt 1 ..."), modelRef="small")
    assert moved.model_with(agent) == "large"
    assert moved.escalation_with(agent) == list(LADDER)
    assert task("t", escalation=[]).escalation_with(agent) == []
    prompt = conversation.task_prompt(moved, branch=None)
    assert prompt.endswith("A previous attempt did not succeed.\nAttempt 1 ...")


def test_an_attempt_the_ladder_takes_over_is_known_before_its_envelope_is_written() -> None:
    ladder = ["small", "medium", "large"]
    assert escalation.escalates(ladder, "small", None, "GATE-FAIL", reasons.GATE_FAILED)
    assert escalation.escalates(ladder, "medium", None, "INCOMPLETE", reasons.NO_TOOL_CALL)
    assert not escalation.escalates(ladder, "large", None, "GATE-FAIL", reasons.GATE_FAILED)  # the last rung drafts
    assert not escalation.escalates(ladder, "small", None, "NO-GO", None)
    assert not escalation.escalates(ladder, "other", None, "GATE-FAIL", reasons.GATE_FAILED)
    at_large = Escalation(model="large", step=2, previous="")
    assert not escalation.escalates(ladder, "large", at_large, "INCOMPLETE", reasons.MAX_TURNS_EXCEEDED)
