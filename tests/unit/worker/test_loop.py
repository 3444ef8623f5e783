"""The worker's own logic (claim, run, retry, recover, drain) through the real client over the in-memory apiserver, on
a clock the test moves: milliseconds. What the real apiserver does (conflicts, selectors, watches) is in
tests/integration."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from foreman.api.http.errors import Unreachable
from foreman.api.models.base import find_condition
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.manifests import PINNED_WORKER_PREFIX, WORKER
from foreman.worker.config import CapabilityOverrides, WorkerConfig
from foreman.worker.executors.stub import StubExecutor
from foreman.worker.loop import Worker
from foreman.worker.registrar import TokenExpired
from tests.clock import Clock
from tests.conditions import until
from tests.fakekube import FakeApiserver, kube_over
from tests.tokens import jwt_of

NODE = "box"


def worker_on(api: FakeApiserver, clock: Clock, **config: Any) -> Worker:
    overrides = CapabilityOverrides(accelerator="cpu", total_ramgb=8, available_ramgb=4)
    settings = WorkerConfig(node_name=NODE, overrides=overrides, heartbeat_interval=3600, **config)
    return Worker(kube_over(api), settings, executors={"stub": StubExecutor}, clock=clock)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await until(worker.synced)
        yield stop
    finally:
        stop.set()
        await task


async def scheduled(api: FakeApiserver, name: str, **payload: Any) -> None:
    kube = kube_over(api)
    await kube.create(AgenticTask.new(name, namespace="ns", payload=payload or None))
    await kube.patch_status(AgenticTask, name, {"phase": "Scheduled", "assignedNode": NODE}, namespace="ns")


def task_of(api: FakeApiserver, name: str) -> AgenticTask:
    return AgenticTask.model_validate(api.objects["agentictasks"][("ns", name)])


async def test_a_task_placed_on_the_node_is_claimed_run_and_finished() -> None:
    api, clock = FakeApiserver(), Clock()
    async with running(worker_on(api, clock)):
        await scheduled(api, "hello")
        await until(lambda: task_of(api, "hello").phase == "Succeeded")
    done = task_of(api, "hello")
    assert done.status.claimed_by is not None
    assert done.status.claimed_by.startswith(f"{NODE}/")
    assert done.status.started_at == clock.now  # claimed on the worker's clock
    assert done.status.verdict == "GO"
    node = FleetNode.model_validate(api.objects["fleetnodes"][("", NODE)])
    assert node.status.capability is not None
    assert node.status.capability.executors == ["stub"]


async def test_a_lost_write_waits_its_backoff_on_the_workers_clock() -> None:
    """A claim (or result) whose write fails is retried through the retry queue: not before the worker's clock has
    moved past the task's backoff, 0.4 s and then twice that."""
    api, clock = FakeApiserver(), Clock()
    worker = worker_on(api, clock)
    async with running(worker):
        await scheduled(api, "flaky")
        api.refuse["flaky"] = [Unreachable("connection reset"), Unreachable("connection reset")]
        worker.retries.poke()
        await until(lambda: len(api.refuse["flaky"]) == 1 and len(worker.retries.queue) == 1)
        await asyncio.sleep(0.05)
        assert task_of(api, "flaky").phase == "Scheduled"  # the real time that passed is not the worker's
        clock.advance(0.4)
        worker.retries.poke()
        await until(lambda: not api.refuse["flaky"] and len(worker.retries.queue) == 1)
        clock.advance(0.4)
        worker.retries.poke()
        await asyncio.sleep(0.05)
        assert task_of(api, "flaky").phase == "Scheduled"  # the second wait is 0.8 s
        clock.advance(0.4)
        worker.retries.poke()
        await until(lambda: task_of(api, "flaky").phase == "Succeeded")


async def test_a_task_left_running_by_a_previous_life_goes_back_to_pending() -> None:
    api, clock = FakeApiserver(), Clock()
    kube = kube_over(api)
    await kube.create(AgenticTask.new("orphan", namespace="ns"))
    await kube.patch_status(
        AgenticTask, "orphan", {"phase": "Running", "assignedNode": NODE, "claimedBy": "box/old"}, namespace="ns"
    )
    async with running(worker_on(api, clock)):
        pass
    orphan = task_of(api, "orphan")
    assert orphan.phase == "Pending"
    assert orphan.status.attempts == 1
    said = find_condition(orphan.status.conditions, "Scheduled")
    assert said is not None
    assert said.reason == "WorkerRestartRecovery"


async def test_a_drain_hands_a_task_past_its_grace_back_without_counting_an_attempt() -> None:
    api, clock = FakeApiserver(), Clock()
    worker = worker_on(api, clock, drain_grace=0)
    async with running(worker):
        await scheduled(api, "long", sleepSeconds=3600)
        await until(lambda: task_of(api, "long").phase == "Running")
    handed_back = task_of(api, "long")
    assert handed_back.phase == "Pending"
    assert handed_back.status.attempts == 0
    assert ("long", "NodeDraining", "Warning") in api.events
    node = FleetNode.model_validate(api.objects["fleetnodes"][("", NODE)])
    assert node.status.phase == "Stopped"


async def test_asked_to_leave_the_worker_drains_as_on_sigterm_and_reports_who_it_is() -> None:
    api, clock = FakeApiserver(), Clock()
    api.bearer_token = jwt_of(
        {"sub": f"{PINNED_WORKER_PREFIX}{NODE}", "iat": clock.seconds(), "exp": clock.seconds() + 3600}
    )
    worker = worker_on(api, clock, drain_grace=0)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    await until(worker.synced)
    await scheduled(api, "long", sleepSeconds=3600)
    await until(lambda: task_of(api, "long").phase == "Running")
    await kube_over(api).patch(FleetNode, NODE, {"spec": {"drain": True}})  # what `foreman node leave` writes
    assert worker.registrar is not None
    await worker.registrar.heartbeat()
    await asyncio.wait_for(run, 5)  # it stopped without being told to
    assert not stop.is_set()
    assert task_of(api, "long").phase == "Pending"
    node = FleetNode.model_validate(api.objects["fleetnodes"][("", NODE)])
    assert node.status.phase == "Stopped"
    assert node.spec.drain  # a restarted worker's registration does not undo the request
    assert node.status.identity is not None
    assert (node.status.identity.kind, node.status.identity.user) == ("per-node", f"{PINNED_WORKER_PREFIX}{NODE}")
    assert worker.metrics.token_expiry._value.get() == 3600

    again = worker_on(api, clock)
    assert again.registrar is None
    await asyncio.wait_for(again.run(asyncio.Event()), 5)  # restarted by its supervisor: it leaves at once
    assert FleetNode.model_validate(api.objects["fleetnodes"][("", NODE)]).spec.drain


async def test_an_expired_token_stops_the_worker_before_it_registers_with_the_command_that_mends_it() -> None:
    api, clock = FakeApiserver(), Clock()
    api.bearer_token = jwt_of({"sub": f"{PINNED_WORKER_PREFIX}{NODE}", "exp": clock.seconds() - 1})
    with pytest.raises(TokenExpired, match=f"token expired on .* UTC: run foreman node rotate {NODE}$"):
        await worker_on(api, clock).run(asyncio.Event())
    assert ("", NODE) not in api.objects.get("fleetnodes", {})
    # joined where the chart installed Foreman: the command names that namespace
    api.bearer_token = jwt_of({"sub": f"system:serviceaccount:fleet-ops:{WORKER}-{NODE}", "exp": clock.seconds() - 1})
    with pytest.raises(TokenExpired, match=f"run foreman node rotate {NODE} --foreman-namespace fleet-ops$"):
        await worker_on(api, clock).run(asyncio.Event())
