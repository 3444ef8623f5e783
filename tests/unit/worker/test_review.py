"""The review step's rules (pure): which ends begin a review, what the reviewer is shown, that anything but a clear
GO with reasons is NO-GO (LLMKube #1801), how the worker applies it (back to Pending for the reviewer's Agent and
model, never a second review, a failed review a NO-GO) and where placement looks (acting Agent, model)."""

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foreman.api.lifecycle import reasons, status, subtasks
from foreman.api.models.agents import AgentSpec
from foreman.api.models.envelope import VERDICTS, ChildRecord, ResultEnvelope
from foreman.api.models.gates import Gate, GateResult
from foreman.api.models.pullrequests import PullRequestPolicy
from foreman.api.models.review import MAX_DIFF, ReviewRef, ReviewStage
from foreman.api.models.tasks import AgenticTask
from foreman.controller.trim import for_decisions
from foreman.worker import review
from foreman.worker.rules import Outcome, finished
from tests.factories import T0, moved, running_agent_task

PASSED = GateResult(name="tests", status="passed", exit_status=0, output_tail="1 passed")
REF = ReviewRef(agent_ref="reviewer")
GO = ResultEnvelope(
    kind="issue-fix", verdict="GO", summary="fixed add()", gates=[PASSED], fix_rounds=1,
    extra={"branch": "foreman/t", "commit": "abc123", "changedFiles": ["calc.py"], review.DIFF_KEY: "+return a + b"},
)  # fmt: skip
STAGE = ReviewStage(agent_ref="reviewer", branch="foreman/t", commit="abc123", changed_files=["calc.py"],
                    diff="+return a + b", summary="fixed add()", model="small", gates=[PASSED], fix_rounds=1,
                    pull_request=PullRequestPolicy(on_fail="draft"))  # fmt: skip


def running(stage: ReviewStage | None = None, **spec: object) -> AgenticTask:
    return running_agent_task({"review": stage.to_wire()} if stage is not None else None, **spec)


def test_a_go_begins_the_review_stage_with_what_the_reviewer_is_shown() -> None:
    stage = review.stage_for(REF, GO, model="small", pull_request=PullRequestPolicy(on_fail="draft"))
    assert stage is not None
    assert (stage.agent_ref, stage.branch, stage.commit, stage.changed_files) == ("reviewer", "foreman/t", "abc123",
                                                                                  ["calc.py"])  # fmt: skip
    assert (stage.diff, stage.summary, stage.model, stage.gates, stage.fix_rounds) == (
        "+return a + b", "fixed add()", "small", [PASSED], 1,
    )  # fmt: skip
    assert stage.pull_request.on_fail == "draft"


@pytest.mark.parametrize("verdict", [v for v in VERDICTS if v != "GO"])
def test_only_a_go_is_reviewed(verdict: str) -> None:
    ended = GO.model_copy(update={"verdict": verdict, "gates": []})
    assert review.stage_for(REF, ended, model=None, pull_request=PullRequestPolicy()) is None
    assert review.stage_for(None, GO, model=None, pull_request=PullRequestPolicy()) is None
    failed = GO.model_copy(update={"failure_reason": "PullRequestFailed"})
    assert review.stage_for(REF, failed, model=None, pull_request=PullRequestPolicy()) is None


def test_a_long_diff_is_cut_and_says_so() -> None:
    cut = review.bounded_diff("x" * (MAX_DIFF * 2))
    assert len(cut) < MAX_DIFF + 64
    assert cut.endswith("[diff cut: longer than 64 KiB]")
    ReviewStage(agent_ref="r", diff=cut)  # fits the field


def test_a_clear_go_with_reasons_is_go() -> None:
    answer = review.judged("GO", submitted=True, summary="add() is right; test covers it", ended="Submitted")
    assert (answer.verdict, answer.reasons) == ("GO", "add() is right; test covers it")


@given(
    verdict=st.sampled_from([*VERDICTS, "", "go", "LGTM"]),
    submitted=st.booleans(),
    summary=st.text(max_size=50),
    ended=st.sampled_from([reasons.NO_TOOL_CALL, reasons.MAX_TURNS_EXCEEDED, reasons.CONTEXT_EXCEEDED, "Submitted"]),
)
def test_anything_but_a_clear_go_is_no_go(verdict: str, submitted: bool, summary: str, ended: str) -> None:
    answer = review.judged(verdict, submitted=submitted, summary=summary, ended=ended)
    clear = submitted and verdict == "GO" and bool(summary.strip())
    assert answer.verdict == ("GO" if clear else "NO-GO")
    assert answer.reasons  # a NO-GO always says why


def test_a_reviewer_that_could_not_verify_says_how_it_ended() -> None:
    answer = review.judged("INCOMPLETE", submitted=False, summary="", ended=reasons.NO_TOOL_CALL)
    assert answer == review.Judged("NO-GO", f"the reviewer could not verify (ended {reasons.NO_TOOL_CALL})")
    assert review.judged("GO", submitted=True, summary="  ", ended="Submitted").verdict == "NO-GO"


def test_the_prompt_shows_the_task_the_summary_the_gates_and_the_diff() -> None:
    said = review.prompt("Fix add().", STAGE, workspace="The workspace is a checkout.")
    for part in ("Fix add().", "The workspace is a checkout.", "fixed add()", "- tests: passed (exit 0)",
                 "after 1 fix round", "calc.py", "+return a + b"):  # fmt: skip
        assert part in said
    empty = review.prompt("x", STAGE.model_copy(update={"diff": "", "gates": []}), workspace="")
    assert "No verify gates ran." in empty
    assert "the agent changed no file" in empty


def test_the_worker_requeues_a_go_for_its_reviewer_without_spending_a_retry() -> None:
    current = running(retries=0, review={"agentRef": "reviewer"})
    outcome = Outcome(envelope=GO, model="small", review=REF, pull_request=PullRequestPolicy(on_fail="draft"))
    patch = finished(current, outcome, T0, backoff=5, backoff_max=300)
    assert (patch["phase"], patch["attempts"]) == ("Pending", 0)
    assert patch["review"]["agentRef"] == "reviewer"
    assert patch["review"]["diff"] == "+return a + b"
    assert patch["attemptHistory"][-1]["verdict"] == "GO"
    assert any(c["reason"] == reasons.REVIEWING for c in patch["conditions"])


def test_in_review_the_reviewers_envelope_is_the_outcome_never_a_second_review() -> None:
    current = running(STAGE, review={"agentRef": "reviewer"})
    reviewed = ResultEnvelope(kind="issue-fix", verdict="NO-GO", gates=[PASSED])
    patch = finished(current, Outcome(envelope=reviewed, model="big"), T0, backoff=5, backoff_max=300)
    assert (patch["phase"], patch["verdict"]) == ("Succeeded", "NO-GO")


def test_a_review_attempt_that_ends_without_an_answer_is_no_go() -> None:
    current = running(STAGE, review={"agentRef": "reviewer"})
    outcome = Outcome(reason=reasons.EXECUTOR_ERROR, message="model server unreachable")
    patch = finished(current, outcome, T0, backoff=5, backoff_max=300)
    assert (patch["phase"], patch["verdict"]) == ("Failed", "NO-GO")
    result = ResultEnvelope.model_validate(patch["result"])
    assert result.review is not None
    assert result.review.verdict == "NO-GO"
    assert "could not verify" in result.review.reasons
    assert "unreachable" in result.review.reasons
    assert (result.gates, result.extra["branch"]) == ([PASSED], "foreman/t")


def test_in_review_the_reviewer_is_the_acting_agent_and_its_model_places_the_task() -> None:
    spec = {"agentRef": "coder", "modelRef": "small", "escalation": ["small", "big"],
            "gates": [Gate(name="tests", argv=["pytest"]).to_wire()]}  # fmt: skip
    before = running(**spec)
    coder = AgentSpec(review=REF)
    assert (before.acting_agent_ref, before.model_with(coder), before.review_with(coder)) == ("coder", "small", REF)
    during = running(STAGE, **spec)
    reviewer = AgentSpec(model="big-reviewer")
    assert during.acting_agent_ref == "reviewer"
    assert during.model_with(reviewer) == "big-reviewer"
    assert during.model_with(AgentSpec()) == "small"  # a reviewer Agent without a model: the work's model
    assert (during.gates_with(reviewer), during.escalation_with(reviewer), during.review_with(coder)) == ([], [], None)
    assert during.pull_request_with(reviewer) == STAGE.pull_request


def test_the_controllers_cache_keeps_of_the_stage_only_what_placement_reads() -> None:
    kept = for_decisions(running(STAGE, agentRef="coder")).status.review
    assert kept == ReviewStage(agent_ref="reviewer", model="small")


def _reviewed_on(node: str) -> tuple[AgenticTask, AgenticTask]:
    """Task t's work on n1 (claimed at T0, GO at T0 + 5 min), then its review claimed on `node`: that task, and the
    task once the review's GO ended it."""
    outcome = Outcome(envelope=GO, model="small", review=REF, pull_request=PullRequestPolicy())
    pending = moved(running(), finished(running(), outcome, T0 + timedelta(minutes=5), backoff=5, backoff_max=300), 5)
    placed = moved(pending, status.placed(pending, node, T0 + timedelta(minutes=6)), 6)
    held = moved(placed, status.claimed(placed, T0 + timedelta(minutes=6), f"{node}/x"), 7)
    answer = ResultEnvelope(kind="issue-fix", verdict="GO", summary="add() is right")
    ended = moved(held, status.succeeded(held, T0 + timedelta(minutes=8), answer, {}), 8)
    return held, ended


def test_the_move_that_begins_the_review_records_the_works_attempts_as_it_ends_them() -> None:
    """Where and when the work ran, in the stage no worker may change after (admission): what tells the work's
    attempts, whose children and schedules are the task's, from the review's."""
    held, _ = _reviewed_on("rev")
    assert held.status.review is not None
    [work] = held.status.review.work_attempts
    assert (work.number, work.node, work.started_at, work.finished_at) == (1, "n1", T0, T0 + timedelta(minutes=5))
    assert (work.verdict, work.usage, work.transcript_ref) == (None, None, None)  # where and when only
    assert [attempt.node for attempt in held.status.attempt_history] == ["n1", "rev"]


def test_the_reviewers_node_never_ran_the_task_for_its_children_cached_or_not() -> None:
    """Held by the reviewer, or ended by it and trimmed in the controller's cache (no attempt times, its end on the
    reviewer's node): only the work's node, while the work ran, made the task's children and schedules."""
    for node in ("rev", "n1"):  # the reviewer on another node, or on the work's own
        tasks = _reviewed_on(node)
        for seen in (*tasks, *map(for_decisions, tasks)):
            assert not subtasks.ran_on(seen, node, T0 + timedelta(minutes=7))  # while it reviewed
            assert subtasks.ran_on(seen, "n1", T0 + timedelta(minutes=4))  # while the work ran


def test_the_children_the_work_made_are_carried_to_the_reviewed_envelope() -> None:
    """As a task without review lists them: the work's, as they stood when it ended (the reviewer reads none)."""
    children = [ChildRecord(name="t-1", phase="Succeeded", verdict="GO"), ChildRecord(name="t-2", phase="Running")]
    split = GO.model_copy(update={"children": children})
    outcome = Outcome(envelope=split, model="small", review=REF, pull_request=PullRequestPolicy())
    patch = finished(running(retries=0), outcome, T0, backoff=5, backoff_max=300)
    stage = ReviewStage.model_validate(patch["review"])
    assert stage.children == children
    unanswered = finished(running(stage), Outcome(reason=reasons.TIMEOUT, message="out of time"), T0, backoff=5,
                          backoff_max=300)  # fmt: skip
    assert ResultEnvelope.model_validate(unanswered["result"]).children == children
