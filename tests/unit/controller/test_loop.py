"""The controller loop's own logic (when it looks, what it requeues) through the real client over the in-memory
apiserver: milliseconds.

What the real apiserver does (conflicts on stale writes, watches, field managers) is tested in tests/integration.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from foreman.api.http.errors import Conflict, ServerError
from foreman.api.http.requests import Request
from foreman.api.http.transport import Answer
from foreman.api.models.base import utcnow, wire_time
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.controller.config import ControllerConfig
from foreman.controller.expiry import TimeToLive
from foreman.controller.loop import Controller
from tests.clock import Clock
from tests.conditions import until
from tests.factories import node, schedule
from tests.fakekube import FakeApiserver, kube_over, route_of


@asynccontextmanager
async def running(controller: Controller) -> AsyncIterator[Controller]:
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    try:
        yield controller
    finally:
        stop.set()
        await task


def written(api: FakeApiserver, name: str) -> bool:
    return any(written == name for written, _ in api.status_writes)


async def test_a_task_created_while_the_caches_list_is_decided_as_soon_as_the_controller_can() -> None:
    """Created in the first second after start, a task waited 15-16 s (the next liveness tick) when the TaskSchedule
    cache was the last to sync: that sync woke nothing."""
    api = FakeApiserver()
    kube = kube_over(api)
    schedules_listed = api.hold(TaskSchedule)
    controller = Controller(kube, ControllerConfig(leader_election=False))
    async with running(controller):
        await kube.create(AgenticTask.new("early", namespace="ns"))
        await until(lambda: controller.cache.task(("ns", "early")) is not None)
        assert not written(api, "early")  # not synced: nothing is decided yet
        schedules_listed.set()
        await until(lambda: written(api, "early"))  # blocked: no node fits


async def test_a_schedule_created_before_the_caches_synced_is_planned_as_soon_as_the_controller_can() -> None:
    """A TaskSchedule created at start waited 31-32 s: the schedule loop slept its full check period while the
    caches were not synced, and nothing woke it when they were."""
    api = FakeApiserver()
    kube = kube_over(api)
    nodes_listed = api.hold(FleetNode)
    controller = Controller(kube, ControllerConfig(leader_election=False))
    async with running(controller):
        api.put(schedule("nightly"))
        await until(lambda: ("ns", "nightly") in controller.schedules.schedules)
        nodes_listed.set()
        await until(lambda: written(api, "nightly"))  # its Accepted condition


async def test_a_conflicting_write_is_decided_again_on_the_fresh_task() -> None:
    api = FakeApiserver()
    kube = kube_over(api)
    api.refuse["moving"] = [Conflict("changed meanwhile", status=409)]
    async with running(Controller(kube, ControllerConfig(leader_election=False))):
        await kube.create(AgenticTask.new("moving", namespace="ns"))
        await until(lambda: len(api.status_writes) == 2)  # refused, then written after a fresh read
    task = await kube.get(AgenticTask, "moving", "ns")
    assert (task.phase, task.status.conditions[0].reason) == ("Pending", "NoFittingNode")


async def test_a_failed_write_is_retried_after_a_backoff_of_its_own() -> None:
    api = FakeApiserver()
    kube = kube_over(api)
    api.refuse["flaky"] = [ServerError("etcd timeout", status=500), ServerError("again", status=500)]
    controller = Controller(kube, ControllerConfig(leader_election=False))
    async with running(controller):
        await kube.create(AgenticTask.new("flaky", namespace="ns"))
        await until(lambda: len(api.status_writes) == 3)
        task = await kube.get(AgenticTask, "flaky", "ns")
    assert task.status.conditions[0].reason == "NoFittingNode"
    assert controller.metrics.reconcile_errors._value.get() == 2


async def test_a_finished_task_is_deleted_when_the_clock_reaches_its_time_to_live() -> None:
    """The wake-up is the work queue's (no resync in between): moving the clock and poking the queue is enough."""
    api, clock = FakeApiserver(), Clock()
    kube = kube_over(api)
    config = ControllerConfig(
        leader_election=False, resync_every=3600, ttl=TimeToLive(after_success=timedelta(minutes=1))
    )
    controller = Controller(kube, config, clock=clock)
    async with running(controller):
        await kube.create(AgenticTask.new("done", namespace="ns"))
        await kube.patch_status(
            AgenticTask, "done", {"phase": "Succeeded", "finishedAt": wire_time(clock.now)}, namespace="ns"
        )
        await until(lambda: controller.queue.next_due() == 60)  # decided: due in a minute
        clock.advance(60)
        controller.queue.poke()
        await until(lambda: not api.objects["agentictasks"])
    assert controller.metrics.deleted.labels("Succeeded")._value.get() == 1


class SlowTaskWrites(FakeApiserver):
    """A task's status write takes a moment to land; what the store held when a TaskQueue's status landed is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled_when_counted: list[tuple[int, set[str]]] = []

    async def send(self, request: Request, *, within: float) -> Answer:
        route = route_of(request.path) if request.method == "PATCH" else None
        if route and (route.plural, route.subresource) == (AgenticTask.plural, "status"):
            await asyncio.sleep(0.01)
        written = await super().send(request, within=within)
        if route and (route.plural, route.subresource) == (TaskQueue.plural, "status"):
            tasks = [AgenticTask.model_validate(body) for body in self.objects["agentictasks"].values()]
            running = request.body["status"]["running"]
            self.scheduled_when_counted.append((running, {t.name for t in tasks if t.phase == "Scheduled"}))
        return written


async def test_a_queues_status_lands_after_the_placements_it_counts() -> None:
    """A CI run read TaskQueue status `running: 2` while one of the two placements had not landed: the plan's writes
    went out at once, the queue's among them."""
    api = SlowTaskWrites()
    kube = kube_over(api)
    await kube.create(TaskQueue.model_validate({"metadata": {"name": "team"}, "spec": {"weight": 1}}))
    api.put(node("n1", slots=2))
    async with running(Controller(kube, ControllerConfig(leader_election=False))):
        for name in ("a", "b"):
            await kube.create(AgenticTask.new(name, namespace="ns", queue="team"))
        await until(lambda: any(running == 2 for running, _ in api.scheduled_when_counted))
    for running_count, scheduled in api.scheduled_when_counted:
        assert len(scheduled) >= running_count


async def test_a_heartbeat_that_moves_nothing_else_starts_no_pass_and_a_phase_change_does() -> None:
    """A pass per heartbeat walked every node and placed task: with 1,000 nodes at 30 s, 33 passes a second and most
    of the controller's idle CPU (bench footprint)."""
    api = FakeApiserver()
    kube = kube_over(api)
    controller = Controller(kube, ControllerConfig(leader_election=False))
    passes = 0
    reconcile = controller.reconcile_once

    async def counted() -> None:
        nonlocal passes
        passes += 1
        await reconcile()

    controller.reconcile_once = counted  # type: ignore[method-assign]
    api.put(node("gpu-1"))
    async with running(controller):
        await until(lambda: passes > 0 and controller.cache.nodes.get("gpu-1") is not None)
        await asyncio.sleep(0.05)
        before = passes
        for _ in range(20):
            beat = await kube.patch_status(FleetNode, "gpu-1", {"lastHeartbeatTime": wire_time(utcnow())})
        await until(lambda: controller.cache.nodes["gpu-1"].metadata.resource_version == beat.metadata.resource_version)
        await asyncio.sleep(0.05)
        assert passes == before
        await kube.patch_status(FleetNode, "gpu-1", {"phase": "Draining", "lastHeartbeatTime": wire_time(utcnow())})
        await until(lambda: passes > before)
