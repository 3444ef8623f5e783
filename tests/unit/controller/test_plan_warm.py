"""Policy warm in a planning pass: a task waits up to its coldStartDelay for a busy warm node, then starts cold."""

from __future__ import annotations

from datetime import timedelta

from foreman.api.models.nodes import FleetNode
from foreman.controller.plan import Plan, StatusWrite
from tests.factories import T0, node, task
from tests.unit.controller.test_plan import cache_of, pass_over


def serving(name: str, *loaded: str) -> FleetNode:
    fleet_node = node(name, accelerator="cuda")
    models = [{"name": m, "sizeGB": 8, "loadSeconds": 20, "loaded": m in loaded} for m in ("a", "b")]
    capability = {**fleet_node.status.capability.model_dump(by_alias=True), "models": models, "modelMemoryGB": 24}
    return FleetNode.model_validate(
        {**fleet_node.model_dump(by_alias=True), "status": {"phase": "Ready", "capability": capability}}
    )


def busy_warm_fleet(*, at: timedelta = timedelta(0)) -> Plan:
    held = task("running", phase="Scheduled", assignedNode="warm", modelRef="b")
    return pass_over(cache_of(serving("cold", "a"), serving("warm", "b"), held, task("t", modelRef="b")), at=at)


def test_a_task_waits_for_the_busy_warm_node_until_its_delay_is_over() -> None:
    plan = busy_warm_fleet()
    assert not [w for w in plan.writes if isinstance(w, StatusWrite) and w.task.name == "t"]
    assert plan.requeue[("ns", "t")] == T0 + timedelta(seconds=5)


def test_after_the_delay_it_starts_cold_with_an_event_and_the_wait_counted() -> None:
    plan = busy_warm_fleet(at=timedelta(seconds=6))
    (write,) = [w for w in plan.writes if isinstance(w, StatusWrite) and w.task.name == "t"]
    assert (write.reason, write.patch["assignedNode"], write.cold_start, write.warm_wait) == (
        "ColdStart",
        "cold",
        True,
        5,
    )
    assert "b must be loaded first (about 20 s)" in write.message


def test_a_free_warm_node_is_taken_at_once() -> None:
    plan = pass_over(cache_of(serving("cold", "a"), serving("warm", "b"), task("t", modelRef="b")))
    (write,) = [w for w in plan.writes if isinstance(w, StatusWrite)]
    assert (write.reason, write.patch["assignedNode"], write.cold_start) == ("FleetNodeAssigned", "warm", False)
    assert write.warm_wait == 0  # counted as a wait that ended warm, at once


def test_a_cold_start_with_no_warm_node_anywhere_waited_for_nothing() -> None:
    plan = pass_over(cache_of(serving("cold", "a"), task("t", modelRef="b")), at=timedelta(seconds=60))
    (write,) = [w for w in plan.writes if isinstance(w, StatusWrite)]
    assert (write.reason, write.cold_start, write.warm_wait) == ("ColdStart", True, None)
