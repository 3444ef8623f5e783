"""A reconcile pass as data: cache and time in, intents out. No apiserver, no loop."""

from datetime import timedelta
from typing import Any

from foreman.controller.cache import Cache, TaskKey
from foreman.controller.config import ControllerConfig
from foreman.controller.placeable import PlaceableLanes
from foreman.controller.plan import LabelWrite, NodeNotReady, PlacementOrder, Plan, StatusWrite, plan_pass
from tests.factories import T0, node, task

CONFIG = ControllerConfig(leader_election=False, stale_after=timedelta(seconds=90))


def cache_of(*objects: Any) -> Cache:
    cache = Cache()
    for obj in objects:
        if obj.kind == "FleetNode":
            cache.upsert_node(obj, T0)
        else:
            cache.upsert_task(obj)
    return cache


def pass_over(
    cache: Cache, *, at: timedelta = timedelta(0), ready: PlaceableLanes[TaskKey, PlacementOrder] | None = None
) -> Plan:
    everything = {(ns, name) for ns, names in cache.tasks.items() for name in names}
    return plan_pass(cache, PlaceableLanes() if ready is None else ready, everything, T0 + at, CONFIG)


def status_writes(plan: Plan) -> dict[str, tuple[str, str | None]]:
    return {w.task.name: (w.reason, w.patch.get("phase")) for w in plan.writes if isinstance(w, StatusWrite)}


def test_a_ready_task_is_placed_on_a_live_node_and_then_labelled() -> None:
    plan = pass_over(cache_of(node("n1"), task("t")))
    (write,) = plan.writes
    assert isinstance(write, StatusWrite)
    assert (write.reason, write.patch["assignedNode"], write.placed, write.relabel, write.warn) == (
        "FleetNodeAssigned", "n1", True, True, False,
    )  # fmt: skip
    assert plan.live == {"n1"}


def test_a_task_that_fits_no_node_is_blocked_and_unblocked_with_the_reason_that_says_so() -> None:
    """The placement recheck logged and counted NoFittingNode when it unblocked a task (issue 17)."""
    big = {"requiredCapability": {"minRAMGB": 64}}
    occupied = task("running", phase="Running", assignedNode="n1")  # the one slot: nothing is placed, only rechecked
    plan = pass_over(cache_of(node("n1", ram=16), occupied, task("big", **big)))
    assert status_writes(plan) == {"big": ("NoFittingNode", "Pending")}
    no_fit = {"type": "Blocked", "status": "True", "reason": "NoFittingNode", "lastTransitionTime": T0}
    plan = pass_over(cache_of(node("n1", ram=128), occupied, task("big", conditions=[no_fit], **big)))
    assert status_writes(plan) == {"big": ("FittingNodeAvailable", "Pending")}


def test_a_silent_node_is_marked_not_ready_and_its_task_requeued() -> None:
    plan = pass_over(cache_of(node("gone"), task("t", phase="Running", assignedNode="gone")), at=timedelta(seconds=91))
    assert [w.node.name for w in plan.writes if isinstance(w, NodeNotReady)] == ["gone"]
    assert status_writes(plan) == {"t": ("NodeLost", "Pending")}
    assert plan.live == frozenset()


def test_a_wrong_label_is_corrected_and_a_backoff_is_requeued_for_its_end() -> None:
    later = T0 + timedelta(seconds=30)
    held = task("held", phase="Scheduled", assignedNode="n1")  # no node label yet
    plan = pass_over(cache_of(node("n1", slots=2), held, task("waiting", notBefore=later)))
    assert [w.task.name for w in plan.writes if isinstance(w, LabelWrite)] == ["held"]
    assert plan.requeue == {("ns", "waiting"): later}
