from datetime import timedelta
from typing import Any

import pytest

from foreman.api.lifecycle import status
from foreman.api.models.base import set_condition
from foreman.api.models.tasks import AgenticTask
from foreman.controller.rules import Backoff, Blocked, Fail, Placeable, cycle_through, decide
from tests.factories import T0, task

HINT = " (if creating them failed, fix and apply them again; delete this task to give up)"


def siblings(*tasks: AgenticTask) -> dict[str, AgenticTask]:
    return {t.name: t for t in tasks}


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        (task("up", phase="Succeeded", verdict="GO"), Placeable()),
        (task("up", phase="Succeeded", verdict="GATE-PASS"), Placeable()),
        (task("up", phase="Succeeded", verdict="SKIPPED"), Placeable()),
        (
            task("up", phase="Succeeded", verdict="NO-GO"),
            Fail("UpstreamFailed", "upstream up finished with verdict NO-GO"),
        ),
        (
            task("up", phase="Succeeded", verdict="GATE-FAIL"),
            Fail("UpstreamFailed", "upstream up finished with verdict GATE-FAIL"),
        ),
        (task("up", phase="Failed", failureReason="Timeout"), Fail("UpstreamFailed", "upstream up failed (Timeout)")),
        (task("up", phase="Running"), Blocked("WaitingForDependencies", "waiting for up")),
        (task("up", phase="Pending"), Blocked("WaitingForDependencies", "waiting for up")),
        (None, Blocked("DependencyNotFound", "waiting for tasks that do not exist: up" + HINT)),
    ],
)
def test_dependency_table(upstream: AgenticTask | None, expected: object) -> None:
    down = task("down", dependsOn=["up"])
    assert decide(down, siblings(down, *([upstream] if upstream else [])), T0) == expected


def test_a_failed_upstream_wins_over_a_missing_one() -> None:
    down = task("down", dependsOn=["ghost", "up"])
    assert isinstance(decide(down, siblings(down, task("up", phase="Failed")), T0), Fail)


def test_cycles_fail_every_member_including_self_dependency() -> None:
    a, b, c = task("a", dependsOn=["c"]), task("b", dependsOn=["a"]), task("c", dependsOn=["b"])
    outside = task("d", dependsOn=["a"])
    graph = siblings(a, b, c, outside)
    for member in (a, b, c):
        decision = decide(member, graph, T0)
        assert isinstance(decision, Fail)
        assert decision.reason == "DependencyCycle"
    assert decide(outside, graph, T0) == Blocked("WaitingForDependencies", "waiting for a")
    me = task("me", dependsOn=["me"])
    assert cycle_through("me", siblings(me)) == ["me", "me"]


def test_a_500_deep_chain_is_not_a_cycle_and_does_not_recurse() -> None:
    chain = [task("t0")] + [task(f"t{i}", dependsOn=[f"t{i - 1}"]) for i in range(1, 500)]
    graph = siblings(*chain)
    assert cycle_through("t499", graph) is None
    assert decide(chain[-1], graph, T0) == Blocked("WaitingForDependencies", "waiting for t498")


def test_cancel_fails_pending_and_scheduled_but_leaves_running_to_the_worker() -> None:
    for phase in ("Pending", "Scheduled"):
        decision = decide(task("x", phase=phase, cancel=True), {}, T0)
        assert isinstance(decision, Fail)
        assert decision.reason == "Cancelled"
    assert decide(task("x", phase="Running", cancel=True), {}, T0) is None
    assert decide(task("x", phase="Succeeded"), {}, T0) is None


def test_retry_backoff_holds_a_ready_task_until_not_before() -> None:
    later = T0 + timedelta(seconds=30)
    assert decide(task("x", notBefore=later), {}, T0) == Backoff(later)
    assert decide(task("x", notBefore=later), {}, later) == Placeable()


def test_scheduling_clears_blocked_only_on_a_task_that_was_blocked() -> None:
    def conditions(patch: dict[str, Any]) -> dict[str, tuple[str, str]]:
        return {c["type"]: (c["status"], c["reason"]) for c in patch["conditions"]}

    fresh = status.placed(task("x"), "node-a", T0)
    assert conditions(fresh) == {"Scheduled": ("True", "FleetNodeAssigned")}
    blocked = set_condition([], type="Blocked", status="True", reason="NoFittingNode", now=T0)
    waited = task("x").model_copy(update={"status": task("x").status.model_copy(update={"conditions": blocked})})
    assert conditions(status.placed(waited, "node-a", T0))["Blocked"] == ("False", "FleetNodeAssigned")


def test_a_failed_task_is_no_longer_blocked() -> None:
    """A task that failed (here: a dependency cycle found after it waited for a missing upstream) kept
    Blocked=True "waiting for tasks that do not exist", naming a task that existed by then."""
    blocked = {
        "type": "Blocked",
        "status": "True",
        "reason": "DependencyNotFound",
        "message": "waiting for tasks that do not exist: b" + HINT,
        "lastTransitionTime": T0,
    }
    waiting = task("a", dependsOn=["b"], conditions=[blocked])
    patch = status.failed(waiting, T0, "DependencyCycle", "dependency cycle: a -> b -> a")
    by_type = {c["type"]: c for c in patch["conditions"]}
    assert (by_type["Blocked"]["status"], by_type["Blocked"]["reason"]) == ("False", "DependencyCycle")
    never_blocked = status.failed(task("c"), T0, "Cancelled", "cancelled while Pending")
    assert [c["type"] for c in never_blocked["conditions"]] == ["Finished"]
