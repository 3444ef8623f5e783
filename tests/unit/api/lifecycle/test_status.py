from datetime import timedelta
from typing import Any

from foreman.api.lifecycle.status import failed, needs_blocked_write, unblocked
from foreman.api.models.base import wire_time
from foreman.api.models.envelope import ResultEnvelope
from tests.factories import T0, task


def blocked_by(reason: str) -> dict[str, Any]:
    return {"type": "Blocked", "status": "True", "reason": reason, "message": "m", "lastTransitionTime": T0}


def blocked_condition(patch: dict[str, Any]) -> tuple[str, str]:
    (condition,) = [c for c in patch["conditions"] if c["type"] == "Blocked"]
    return condition["status"], condition["reason"]


def test_unblocking_says_the_opposite_of_what_blocked_the_task() -> None:
    """`pending(None)` wrote DependenciesMet even when NoFittingNode had blocked the task."""
    no_fit = task("x", conditions=[blocked_by("NoFittingNode")])
    assert needs_blocked_write(no_fit, None)
    assert blocked_condition(unblocked(no_fit, T0)) == ("False", "FittingNodeAvailable")
    waited = task("y", conditions=[blocked_by("WaitingForDependencies")])
    assert blocked_condition(unblocked(waited, T0)) == ("False", "DependenciesMet")


def test_an_unchanged_block_costs_no_write() -> None:
    waiting = task("x", conditions=[blocked_by("NoFittingNode")])
    assert not needs_blocked_write(waiting, ("NoFittingNode", "m"))
    assert needs_blocked_write(waiting, ("NoFittingNode", "another"))
    assert not needs_blocked_write(task("never"), None)


def test_a_task_the_controller_fails_gets_an_envelope_saying_why() -> None:
    waiting = task("child", kind="review")
    body = failed(waiting, T0, "UpstreamFailed", "upstream parent failed (ExecutorError)")
    envelope = ResultEnvelope.model_validate(body["result"])
    assert (envelope.kind, envelope.verdict, envelope.failure_reason) == ("review", "INCOMPLETE", "UpstreamFailed")
    assert envelope.summary == "upstream parent failed (ExecutorError)"
    assert envelope.elapsed_sec == 0
    running = task("slow", phase="Running", startedAt=wire_time(T0))
    timed_out = ResultEnvelope.model_validate(
        failed(running, T0 + timedelta(seconds=90), "Timeout", "ran 90 s")["result"]
    )
    assert timed_out.elapsed_sec == 90
    own = ResultEnvelope(kind="verify", verdict="NO-GO", summary="the executor's own")
    assert failed(running, T0, "ExecutorError", "x", result=own)["result"] == own.to_wire()
