"""A reconcile pass as data: cache and time in, intents out. No apiserver, no loop."""

import dataclasses
from datetime import timedelta
from typing import Any

from foreman.api.models.tasks import NODE_LABEL
from foreman.controller.cache import Cache, TaskKey
from foreman.controller.config import ControllerConfig
from foreman.controller.expiry import TimeToLive
from foreman.controller.placeable import PlaceableLanes
from foreman.controller.plan import LabelWrite, NodeNotReady, PlacementOrder, Plan, StatusWrite, TaskDelete, plan_pass
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
    """The placement recheck logged and counted NoFittingNode when it unblocked a task."""
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


TTL = dataclasses.replace(CONFIG, ttl=TimeToLive(after_success=timedelta(hours=1), after_failure=timedelta(hours=2)))


def deleted(plan: Plan) -> list[str]:
    return sorted(w.task.name for w in plan.writes if isinstance(w, TaskDelete))


def test_finished_tasks_are_deleted_at_their_time_and_looked_at_again_then() -> None:
    cache = cache_of(task("ok", phase="Succeeded", finishedAt=T0), task("bad", phase="Failed", finishedAt=T0))
    everything = {("ns", "ok"), ("ns", "bad")}
    plan = plan_pass(cache, PlaceableLanes(), everything, T0, TTL)
    assert (deleted(plan), plan.requeue) == (
        [],
        {("ns", "ok"): T0 + timedelta(hours=1), ("ns", "bad"): T0 + timedelta(hours=2)},
    )
    assert deleted(plan_pass(cache, PlaceableLanes(), everything, T0 + timedelta(hours=1), TTL)) == ["ok"]
    assert deleted(plan_pass(cache, PlaceableLanes(), everything, T0 + timedelta(hours=2), TTL)) == ["bad", "ok"]


def test_an_upstream_waits_for_its_dependant_and_goes_when_the_dependant_finishes() -> None:
    later = T0 + timedelta(hours=1, minutes=30)
    up = task("up", phase="Succeeded", finishedAt=T0)
    cache = cache_of(up, task("down", phase="Running", assignedNode="n1", dependsOn=["up"]))
    assert deleted(plan_pass(cache, PlaceableLanes(), {("ns", "up")}, later, TTL)) == []
    cache.remove_task(("ns", "down"))
    cache.upsert_task(task("down", phase="Succeeded", finishedAt=later, dependsOn=["up"]))
    # NB: only the dependant changed; its upstream is looked at again with it
    assert deleted(plan_pass(cache, PlaceableLanes(), {("ns", "down")}, later, TTL)) == ["up"]


def test_a_finished_task_loses_its_node_label_where_workers_select_by_it() -> None:
    labels = {NODE_LABEL: "n1"}
    done = task("done", phase="Succeeded", assignedNode="n1", finishedAt=T0, labels=labels)
    gone = task("gone", phase="Failed", assignedNode="n1", finishedAt=T0, ttlSecondsAfterFinished=0, labels=labels)
    cache, dirty = cache_of(done, gone), {("ns", "done"), ("ns", "gone")}
    plan = plan_pass(cache, PlaceableLanes(), dirty, T0, TTL)
    assert [w.task.name for w in plan.writes if isinstance(w, LabelWrite)] == ["done"]  # the other one is deleted
    assert deleted(plan) == ["gone"]
    plan = plan_pass(cache, PlaceableLanes(), dirty, T0, TTL, write_labels=False)
    assert not [w for w in plan.writes if isinstance(w, LabelWrite)]
