"""Verify gates' decisions: which gate runs next, and pass / fix round / GATE-FAIL after a round of results."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from foreman.api.models.envelope import PASSING_VERDICTS, VERDICTS, ResultEnvelope
from foreman.api.models.gates import Gate, GateResult, GateStatus
from foreman.worker.agent import gating

LINT = Gate(name="lint", argv=["ruff", "check", "."], timeoutSeconds=60)
TEST = Gate(name="test", argv=["python3", "-m", "pytest"])
GATES = (LINT, TEST)


def ran(gate: Gate, status: GateStatus = "passed", exit_status: int | None = 0, tail: str = "") -> GateResult:
    return GateResult(name=gate.name, status=status, exit_status=exit_status, output_tail=tail)


def failed(gate: Gate, tail: str = "boom") -> GateResult:
    return ran(gate, "failed", 1, tail)


def test_the_gates_run_in_order_and_stop_at_the_first_failure() -> None:
    assert gating.next_gate(GATES, []) is LINT
    assert gating.next_gate(GATES, [ran(LINT)]) is TEST
    assert gating.next_gate(GATES, [ran(LINT), ran(TEST)]) is None
    assert gating.next_gate(GATES, [failed(LINT)]) is None
    assert gating.next_gate((), []) is None


def test_all_passed_is_a_pass_with_every_result() -> None:
    step = gating.decide(GATES, [ran(LINT), ran(TEST)], rounds_done=0, max_rounds=2, turns_left=5)
    assert step == gating.Passed((ran(LINT), ran(TEST)))


def test_a_failure_with_rounds_and_turns_left_is_a_fix_round_telling_the_model_what_failed() -> None:
    step = gating.decide(GATES, [ran(LINT), failed(TEST, "AssertionError: 3 != 4")], rounds_done=0, max_rounds=2,
                         turns_left=5)  # fmt: skip
    assert isinstance(step, gating.FixRound)
    assert step.failed.name == "test"
    assert "`test` (`python3 -m pytest`) failed with exit status 1" in step.message
    assert "AssertionError: 3 != 4" in step.message
    assert "fix round 1 of 2" in step.message


def test_the_gates_after_a_failure_are_recorded_as_not_run() -> None:
    step = gating.decide(GATES, [failed(LINT)], rounds_done=0, max_rounds=2, turns_left=5)
    assert [(r.name, r.status) for r in step.results] == [("lint", "failed"), ("test", "notRun")]


@pytest.mark.parametrize(("rounds_done", "max_rounds", "turns_left"), [(2, 2, 5), (0, 0, 5), (0, 2, 0), (1, 2, 0)])
def test_no_round_or_no_turn_left_is_gate_fail(rounds_done: int, max_rounds: int, turns_left: int) -> None:
    step = gating.decide(GATES, [failed(LINT)], rounds_done=rounds_done, max_rounds=max_rounds, turns_left=turns_left)
    assert isinstance(step, gating.GateFail)
    assert step.failed == failed(LINT)
    assert step.summary.startswith("verify gate lint failed with exit status 1")


def test_a_timed_out_gate_is_said_so() -> None:
    timed_out = GateResult(name="test", status="timedOut", exit_status=None, seconds=30.0, output_tail="...")
    step = gating.decide([TEST], [timed_out], rounds_done=1, max_rounds=1, turns_left=3)
    assert isinstance(step, gating.GateFail)
    assert step.summary == "verify gate test timed out after 30 s and was killed after 1 fix round"


def test_results_missing_or_out_of_order_are_never_a_pass() -> None:
    for results in ([], [ran(LINT)], [ran(TEST), ran(LINT)], [ran(TEST)]):
        step = gating.decide(GATES, results, rounds_done=9, max_rounds=2, turns_left=5)
        assert isinstance(step, gating.GateFail), results


def test_a_fix_round_the_model_ended_without_submitting_is_gate_fail() -> None:
    step = gating.decide(GATES, [failed(LINT)], rounds_done=0, max_rounds=2, turns_left=5)
    assert isinstance(step, gating.FixRound)
    ended = gating.gave_out(step, 1)
    assert ended.failed == failed(LINT)
    assert ended.summary == "verify gate lint failed with exit status 1 after 1 fix round"


@pytest.mark.parametrize("verdict", VERDICTS)
def test_every_passing_verdict_the_model_submits_goes_through_the_gates(verdict: str) -> None:
    assert gating.must_verify(GATES, verdict, submitted=True) is (verdict in PASSING_VERDICTS)  # type: ignore[arg-type]
    assert not gating.must_verify((), verdict, submitted=True)  # type: ignore[arg-type]
    assert not gating.must_verify(GATES, verdict, submitted=False)  # type: ignore[arg-type]


statuses = st.sampled_from(["passed", "failed", "timedOut", "notRun"])
names = st.sampled_from(["lint", "test", "build"])


@given(
    results=st.lists(st.builds(GateResult, name=names, status=statuses), max_size=4),
    rounds_done=st.integers(0, 4),
    max_rounds=st.integers(0, 4),
    turns_left=st.integers(0, 4),
)
def test_a_pass_only_ever_comes_from_every_gate_passed_in_order(
    results: list[GateResult], rounds_done: int, max_rounds: int, turns_left: int
) -> None:
    gates = [LINT, TEST, Gate(name="build", argv=["make"])]
    step = gating.decide(gates, results, rounds_done=rounds_done, max_rounds=max_rounds, turns_left=turns_left)
    in_order = [r.name for r in results] == [g.name for g in gates] and all(r.passed for r in results)
    assert isinstance(step, gating.Passed) is in_order
    assert [r.name for r in step.results] == [g.name for g in gates]
    if isinstance(step, gating.FixRound):
        assert rounds_done < max_rounds
        assert turns_left >= 1
    # whatever the decision, the envelope it leads to is valid, and a pass in it needs every gate passed
    verdict = "GO" if isinstance(step, gating.Passed) else "GATE-FAIL"
    ResultEnvelope(kind="freeform", verdict=verdict, gates=list(step.results))


@pytest.mark.parametrize("verdict", sorted(PASSING_VERDICTS))
def test_the_envelope_refuses_a_pass_with_a_gate_that_did_not_pass(verdict: str) -> None:
    for status in ("failed", "timedOut", "notRun"):
        with pytest.raises(ValidationError, match="gates: a passing verdict needs every gate passed"):
            ResultEnvelope(kind="freeform", verdict=verdict, gates=[ran(LINT), GateResult(name="t", status=status)])
    assert ResultEnvelope(kind="freeform", verdict=verdict, gates=[ran(LINT)]).gates == [ran(LINT)]
