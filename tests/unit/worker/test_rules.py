from datetime import timedelta

from foreman.api.lifecycle.status import claimed
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.gates import Gate, GateResult
from foreman.api.runtime.backoff import backoff_delay
from foreman.worker.rules import Outcome, claimable, claimed_by_us, finished, gates_unmet
from tests.factories import T0, task


def test_only_tasks_scheduled_here_and_not_cancelled_are_claimable() -> None:
    assert claimable(task("t", phase="Scheduled", assignedNode="me"), "me")
    assert not claimable(task("t", phase="Scheduled", assignedNode="other"), "me")
    assert not claimable(task("t", phase="Running", assignedNode="me"), "me")
    assert not claimable(task("t", phase="Scheduled", assignedNode="me", cancel=True), "me")


def test_a_claim_names_the_claimant_so_a_lost_answer_can_be_recognised() -> None:
    patch = claimed(task("t", phase="Scheduled", assignedNode="me"), T0, "me/abc")
    assert (patch["phase"], patch["claimedBy"]) == ("Running", "me/abc")
    mine = task("t", phase="Running", assignedNode="me")
    mine = mine.model_copy(update={"status": mine.status.model_copy(update={"claimed_by": "me/abc"})})
    assert claimed_by_us(mine, "me/abc")
    assert not claimed_by_us(mine, "me/twin")


def test_success_writes_the_verdict_and_envelope() -> None:
    envelope = ResultEnvelope(kind="verify", verdict="GATE-PASS", summary="ok")
    patch = finished(task("t", phase="Running"), Outcome(envelope=envelope), T0, backoff=5, backoff_max=300)
    assert (patch["phase"], patch["verdict"], patch["result"]["schemaVersion"]) == (
        "Succeeded",
        "GATE-PASS",
        "foreman.v1",
    )


def test_retryable_failures_back_off_until_retries_run_out() -> None:
    crash = Outcome(reason="ExecutorError", message="boom")
    first = finished(task("t", phase="Running", retries=2, attempts=0), crash, T0, backoff=5, backoff_max=300)
    assert (first["phase"], first["attempts"], first["notBefore"]) == ("Pending", 1, "2026-01-01T00:00:05Z")
    second = finished(task("t", phase="Running", retries=2, attempts=1), crash, T0, backoff=5, backoff_max=300)
    assert second["notBefore"] == "2026-01-01T00:00:10Z"
    final = finished(task("t", phase="Running", retries=2, attempts=2), crash, T0, backoff=5, backoff_max=300)
    assert (final["phase"], final["failureReason"], final["result"]["failureReason"]) == (
        "Failed",
        "ExecutorError",
        "ExecutorError",
    )


def test_non_retryable_failures_fail_at_once() -> None:
    for reason in ("ExecutorContractViolation", "ExecutorNotFound", "Cancelled"):
        patch = finished(task("t", phase="Running", retries=5), Outcome(reason=reason), T0, backoff=5, backoff_max=300)
        assert patch["phase"] == "Failed"


def test_a_failure_envelope_says_how_long_the_work_ran() -> None:
    """A task that timed out after 2 s (or was cancelled after 5 s of work) read elapsedSec 0.0."""
    running = task("t", phase="Running", startedAt=T0 - timedelta(seconds=2))
    patch = finished(running, Outcome(reason="Timeout", message="slow"), T0, backoff=5, backoff_max=300)
    assert patch["result"]["elapsedSec"] == 2.0


def test_backoff_is_capped() -> None:
    assert [backoff_delay(n, 5, 60) for n in range(6)] == [5, 10, 20, 40, 60, 60]
    assert T0 + timedelta(seconds=backoff_delay(0, 5, 60)) > T0


def test_a_pass_without_a_passed_result_for_each_gate_is_a_contract_violation_whatever_the_executor() -> None:
    gates = [Gate(name="lint", argv=["ruff"]), Gate(name="test", argv=["pytest"])]
    passed = [GateResult(name="lint", status="passed"), GateResult(name="test", status="passed")]
    good = Outcome(envelope=ResultEnvelope(kind="verify", verdict="GO", gates=passed))
    assert gates_unmet(gates, good) is good
    assert gates_unmet([], Outcome(envelope=ResultEnvelope(kind="verify", verdict="GO"))).reason is None
    for envelope in (
        ResultEnvelope(kind="verify", verdict="GO"),  # a command executor knows nothing of gates
        ResultEnvelope(kind="verify", verdict="SKIPPED", gates=passed[:1]),
        ResultEnvelope(kind="verify", verdict="GATE-PASS", gates=passed[::-1]),
    ):
        unmet = gates_unmet(gates, Outcome(envelope=envelope))
        assert unmet.reason == "ExecutorContractViolation"
        assert unmet.envelope is None
    failing = Outcome(envelope=ResultEnvelope(kind="verify", verdict="GATE-FAIL"))
    assert gates_unmet(gates, failing) is failing
