"""The controller against a real kube-apiserver: placement, dependencies, reclaim, leader election."""

import asyncio
import dataclasses
import gc
import socket
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from foreman.api.http.client import Kube
from foreman.api.http.errors import Invalid
from foreman.api.http.features import CEL_VALIDATION, writes_node_label
from foreman.api.models.base import STORED, utcnow
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import NODE_LABEL, AgenticTask
from foreman.controller.loop import Controller
from tests.clusters import Cluster
from tests.integration.helpers import (
    RunningController,
    condition,
    controller_config,
    delete_nodes,
    events,
    heartbeat,
    make_node,
    make_task,
    phase_is,
    running_controller,
    wait_for,
)


@pytest.fixture
async def nodes(kube: Kube) -> AsyncIterator[list[str]]:
    """Node names created by a test, deleted afterwards (FleetNodes are cluster-scoped)."""
    created: list[str] = []
    yield created
    await delete_nodes(kube, *created)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def test_tasks_go_to_the_first_fitting_node(kube: Kube, namespace: str, nodes: list[str]) -> None:
    cpu, cuda, metal = unique("a-cpu"), unique("b-cuda"), unique("c-metal")
    nodes += [cpu, cuda, metal]
    await make_node(kube, cpu, accelerator="cpu", ram=16)
    await make_node(kube, cuda, accelerator="cuda", ram=80, context=131072, slots=2, labels={"pool": "gpu"})
    await make_node(kube, metal, accelerator="metal", ram=64, context=32768)
    async with running_controller(kube, namespace):
        await make_task(
            kube,
            namespace,
            "big-gpu",
            requiredCapability={"accelerator": "cuda", "minRAMGB": 48, "minContextTokens": 100000},
        )
        await make_task(kube, namespace, "mac", requiredCapability={"accelerator": "metal", "minRAMGB": 32})
        await make_task(kube, namespace, "selector", requiredCapability={"nodeSelector": {"pool": "gpu"}})
        await make_task(kube, namespace, "anything", requiredCapability={"minRAMGB": 8})
        placed = {
            name: await wait_for(kube, namespace, name, lambda t: t.status.assigned_node is not None)
            for name in ("big-gpu", "mac", "selector", "anything")
        }
        labelled = writes_node_label(await kube.server_version())
        if labelled:  # a moment after the status: wait for the label too
            placed = {n: await wait_for(kube, namespace, n, lambda t: NODE_LABEL in t.metadata.labels) for n in placed}
    assert {name: t.status.assigned_node for name, t in placed.items()} == {
        "big-gpu": cuda, "mac": metal, "selector": cuda, "anything": cpu,
    }  # fmt: skip
    for task in placed.values():
        # NB: where the server has selectableFields workers select by status.assignedNode: no label is written
        assert task.metadata.labels.get(NODE_LABEL) == (task.status.assigned_node if labelled else None)
        assert condition(task, "Scheduled") == ("True", "FleetNodeAssigned")
    assert await events(kube, namespace) == []  # a placement is in its condition; Events are for warnings


async def test_stopping_mid_pass_drops_the_waiting_writes_cleanly(kube: Kube, namespace: str) -> None:
    """Stopped while a pass's writes wait for a write slot, the controller closes them: Python reports no coroutine
    that was never awaited (pytest turned that warning into a failure of a schedule test in CI)."""

    async def written() -> int:
        return sum(1 for t in (await kube.list(AgenticTask, namespace=namespace)).items if t.status.conditions)

    tasks = 100
    for i in range(tasks):  # fits no node: each gets a Blocked=NoFittingNode write in the first pass
        await make_task(kube, namespace, f"huge-{i:03}", requiredCapability={"minRAMGB": 100000})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with running_controller(kube, namespace, write_concurrency=1):
            deadline = time.monotonic() + 30
            while await written() == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        gc.collect()
    assert 0 < await written() < tasks, "the test did not stop the controller in the middle of its first pass"
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


async def test_no_fit_waits_and_is_placed_within_a_second_of_a_fitting_node(
    kube: Kube, namespace: str, nodes: list[str]
) -> None:
    rocm = unique("rocm")
    nodes.append(rocm)
    async with running_controller(kube, namespace):
        await make_task(kube, namespace, "needs-rocm", requiredCapability={"accelerator": "rocm"})
        waiting = await wait_for(kube, namespace, "needs-rocm", lambda t: condition(t, "Blocked") is not None)
        assert waiting.phase == "Pending"
        assert condition(waiting, "Blocked") == ("True", "NoFittingNode")
        started = time.monotonic()
        await make_node(kube, rocm, accelerator="rocm")
        placed = await wait_for(kube, namespace, "needs-rocm", phase_is("Scheduled"), timeout=1)
        assert time.monotonic() - started < 1
        assert placed.status.assigned_node == rocm
        assert condition(placed, "Blocked") == ("False", "FleetNodeAssigned")


async def test_higher_priority_goes_first(kube: Kube, namespace: str, nodes: list[str]) -> None:
    only = unique("one-slot")
    nodes.append(only)
    async with running_controller(kube, namespace):
        await make_task(kube, namespace, "low", priority=1)
        await make_task(kube, namespace, "high", priority=10)
        await asyncio.sleep(0.2)
        await make_node(kube, only)
        assert (await wait_for(kube, namespace, "high", phase_is("Scheduled"))).status.assigned_node == only
        assert (await kube.get(AgenticTask, "low", namespace)).phase == "Pending"


async def test_failure_cascades_through_a_three_level_chain(kube: Kube, namespace: str) -> None:
    async with running_controller(kube, namespace):
        await make_task(kube, namespace, "root")
        await make_task(kube, namespace, "middle", dependsOn=["root"])
        await make_task(kube, namespace, "leaf", dependsOn=["middle"])
        middle = await wait_for(kube, namespace, "middle", lambda t: condition(t, "Blocked") is not None)
        assert condition(middle, "Blocked") == ("True", "WaitingForDependencies")
        await kube.patch_status(
            AgenticTask, "root", {"phase": "Failed", "failureReason": "ExecutorError"}, namespace=namespace
        )
        for name in ("middle", "leaf"):
            failed = await wait_for(kube, namespace, name, phase_is("Failed"))
            assert (failed.status.failure_reason, failed.status.verdict) == ("UpstreamFailed", "INCOMPLETE")
        middle = await kube.get(AgenticTask, "middle", namespace)
        finished = next(c for c in middle.status.conditions if c.type == "Finished")
        assert finished.message == "upstream root failed (ExecutorError)"
        deadline = time.monotonic() + 10
        while len(warnings := [e for e in await events(kube, namespace) if e["type"] == "Warning"]) < 2:
            assert time.monotonic() < deadline, warnings
            await asyncio.sleep(0.05)
    assert sorted((e["involvedObject"]["name"], e["reason"]) for e in warnings) == [
        ("leaf", "UpstreamFailed"),
        ("middle", "UpstreamFailed"),
    ]


async def test_missing_dependency_blocks_until_it_appears(kube: Kube, namespace: str, nodes: list[str]) -> None:
    worker = unique("n")
    nodes.append(worker)
    await make_node(kube, worker)
    async with running_controller(kube, namespace):
        await make_task(kube, namespace, "after", dependsOn=["before"])
        blocked = await wait_for(kube, namespace, "after", lambda t: condition(t, "Blocked") is not None)
        assert condition(blocked, "Blocked") == ("True", "DependencyNotFound")
        await make_task(kube, namespace, "before", requiredCapability={"accelerator": "rocm"})  # cannot run here
        await wait_for(
            kube, namespace, "after", lambda t: condition(t, "Blocked") == ("True", "WaitingForDependencies")
        )
        await kube.patch_status(AgenticTask, "before", {"phase": "Succeeded", "verdict": "GO"}, namespace=namespace)
        scheduled = await wait_for(kube, namespace, "after", phase_is("Scheduled"))
        assert scheduled.status.assigned_node == worker


async def test_cycles_fail_with_dependency_cycle(kube: Kube, namespace: str) -> None:
    # NB: a self-dependency as a server without CEL stores it (the model refuses it as input; STORED reads it back)
    selfish = AgenticTask.model_validate(
        {"metadata": {"name": "self", "namespace": namespace}, "spec": {"kind": "verify", "dependsOn": ["self"]}},
        context=STORED,
    )
    names = ["a", "b"]
    if await kube.server_version() >= CEL_VALIDATION:
        with pytest.raises(Invalid, match=r"spec\.dependsOn: a task cannot depend on itself"):
            await kube.create(selfish)
    else:
        await kube.create(selfish)
        names.append("self")
    async with running_controller(kube, namespace):
        await make_task(kube, namespace, "a", dependsOn=["b"])
        await make_task(kube, namespace, "b", dependsOn=["a"])
        for name in names:
            failed = await wait_for(kube, namespace, name, phase_is("Failed"))
            assert failed.status.failure_reason == "DependencyCycle"


async def test_cancel_fails_a_pending_task(kube: Kube, namespace: str) -> None:
    async with running_controller(kube, namespace):
        await make_task(kube, namespace, "stop-me", requiredCapability={"accelerator": "rocm"})
        await kube.patch(AgenticTask, "stop-me", {"spec": {"cancel": True}}, namespace=namespace)
        failed = await wait_for(kube, namespace, "stop-me", phase_is("Failed"))
        assert failed.status.failure_reason == "Cancelled"


async def test_claim_expiry_ladder(kube: Kube, namespace: str, nodes: list[str]) -> None:
    """A silent node loses its task (attempts counted) until the limit fails it; the node is marked NotReady."""
    flaky = unique("flaky")
    nodes.append(flaky)
    await make_node(kube, flaky)
    async with running_controller(kube, namespace, stale_after=timedelta(seconds=0.6), max_claim_expiries=2):
        await make_task(kube, namespace, "orphan")
        await wait_for(kube, namespace, "orphan", phase_is("Scheduled"))
        requeued = await wait_for(
            kube, namespace, "orphan", lambda t: t.status.attempts == 1 and NODE_LABEL not in t.metadata.labels
        )
        assert requeued.phase == "Pending"
        assert condition(requeued, "ClaimExpired") == ("True", "NodeLost")
        assert NODE_LABEL not in requeued.metadata.labels
        await heartbeat(kube, flaky)  # the node comes back: the task is placed there again, then lost again
        failed = await wait_for(kube, namespace, "orphan", phase_is("Failed"))
        assert failed.status.failure_reason == "ClaimExpiryLimitReached"
        assert (await kube.get(FleetNode, flaky)).status.phase == "NotReady"


async def test_a_node_silent_since_before_the_start_gets_no_grace(kube: Kube, namespace: str, nodes: list[str]) -> None:
    """At start every node got the full staleness grace: one whose worker had been silent for an hour took new tasks
    for 90 s, each then reclaimed with an attempt counted. The apiserver's time of the node's last status
    write judges it; the controller's clock here runs an hour ahead of the worker's last heartbeat."""
    silent = unique("silent")
    nodes.append(silent)
    await make_node(kube, silent)
    an_hour_later = lambda: utcnow() + timedelta(hours=1)  # noqa: E731
    async with running_controller(kube, namespace, clock=an_hour_later):
        await make_task(kube, namespace, "fresh")
        waiting = await wait_for(kube, namespace, "fresh", lambda t: condition(t, "Blocked") is not None)
        assert (waiting.phase, condition(waiting, "Blocked")) == ("Pending", ("True", "NoFittingNode"))
        assert (await kube.get(FleetNode, silent)).status.phase == "NotReady"


async def test_two_controllers_never_double_schedule_and_fail_over(
    kube: Kube, namespace: str, nodes: list[str]
) -> None:
    big = unique("big")
    nodes.append(big)
    await make_node(kube, big, slots=100)
    lease = {"leader_election": True, "lease_duration": 1.5, "lease_retry_period": 0.2, "lease_name": "ctl"}
    replicas = [
        RunningController(Controller(kube, controller_config(namespace, identity=name, **lease)))
        for name in ("one", "two")
    ]
    try:
        one, two = [await replica.started() for replica in replicas]
        while not (one.leading or two.leading):
            await asyncio.sleep(0.05)
        assert one.leading != two.leading
        for i in range(20):
            await make_task(kube, namespace, f"t{i}")
        placed = lambda t: t.status.assigned_node is not None  # noqa: E731
        for i in range(20):
            await wait_for(kube, namespace, f"t{i}", placed)

        def placements() -> float:
            return sum(c.metrics.transitions.labels("FleetNodeAssigned")._value.get() for c in (one, two))

        await _until(lambda: placements() >= 20, 5)  # NB: the counter moves just after the write the test saw
        assert placements() == 20  # each task scheduled exactly once, whoever led at the time

        leader_index = 0 if one.leading else 1
        standby = (one, two)[1 - leader_index]
        before = standby.metrics.transitions.labels("FleetNodeAssigned")._value.get()
        stopped_at = time.monotonic()
        await replicas[leader_index].stop()  # releases the lease on its way out
        while not standby.leading:
            await asyncio.sleep(0.05)
        assert time.monotonic() - stopped_at < 3
        await make_task(kube, namespace, "after-failover")
        await wait_for(kube, namespace, "after-failover", placed)
        await _until(lambda: standby.metrics.transitions.labels("FleetNodeAssigned")._value.get() > before, 5)
        assert standby.metrics.transitions.labels("FleetNodeAssigned")._value.get() == before + 1
    finally:
        for replica in replicas:
            await replica.stop()


async def _until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.02)


async def test_a_missing_lease_namespace_is_said_once_and_the_controller_is_not_ready(
    kube: Kube, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`foreman install` not run: the Lease's namespace is missing. It logged a warning every 2 s for ever."""
    config = dataclasses.replace(
        controller_config(namespace, leader_election=True, lease_retry_period=0.02), lease_namespace="not-installed"
    )
    controller = Controller(kube, config)
    running = RunningController(controller)
    try:
        await running.started()
        assert controller.elector is not None
        await _until(lambda: controller.elector.failed_rounds >= 10, timeout=20)  # type: ignore[union-attr]
        assert not controller.is_ready()
        assert controller.is_healthy()  # the API answers; only the Lease cannot be held
    finally:
        await running.stop()
    said = capsys.readouterr()
    logged = said.out + said.err
    assert logged.count("cannot hold the leader-election lease") == 1
    assert "namespace not-installed does not exist" in logged
    assert "run `foreman install`" in logged


async def test_health_and_readiness_turn_503_when_the_api_is_unreachable(cluster: Cluster, tmp_path: Path) -> None:
    """The controller's /healthz and /readyz stayed 200 through a 6-minute API outage (the worker's turned 503)."""
    dead = tmp_path / "kubeconfig"
    dead.write_text(cluster.kubeconfig().read_text().replace(f":{cluster.apiserver_port}", ":1"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "controller", "--kubeconfig", str(dead), "--health-port", str(port),
        "--no-leader-elect", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                assert time.monotonic() < deadline, "/healthz never turned 503"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
                        if health.status == 503:
                            break
                except aiohttp.ClientConnectionError:
                    pass  # not listening yet
                await asyncio.sleep(0.1)
            async with http.get(f"http://127.0.0.1:{port}/readyz") as ready:
                assert ready.status == 503
    finally:
        process.terminate()
        await process.wait()
