"""Policy warm against the real apiserver: three fake nodes (FleetNodes the test writes, as a worker's heartbeat
would) whose loaded models change while tasks wait, and the controller on a clock the test moves.

n1 has model a loaded, n2 model b, n3 nothing; each has 24 GB of model memory and one slot, a and b take 20 GB each,
so loading b on n1 evicts a. A task for b goes to n2 (first-fit would take n1); the next waits for n2 up to its
coldStartDelay, then starts cold on n3, not on n1, whose a a queued task waits for; once n3 says b is loaded, a task
that waits for a warm node gets n3 as soon as its slot is free, without a load.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from foreman.api.http.client import Kube
from foreman.api.models.agents import Agent
from foreman.api.models.base import utcnow, wire_time
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue
from foreman.api.models.tasks import AgenticTask
from foreman.controller.waiting import line_up
from tests.clock import Clock
from tests.integration.helpers import (
    condition,
    delete_nodes,
    events,
    make_node,
    make_task,
    running_controller,
    until,
    wait_for,
)

SIZES = {"a": 20.0, "b": 20.0}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def made(kube: Kube) -> AsyncIterator[dict[str, list[str]]]:
    """Cluster-scoped objects of this test, deleted whatever happens."""
    objects: dict[str, list[str]] = {"nodes": [], "queues": []}
    yield objects
    await delete_nodes(kube, *objects["nodes"])
    for name in objects["queues"]:
        await kube.delete(TaskQueue, name)


async def advertise(kube: Kube, node: str, *loaded: str) -> None:
    """A worker's heartbeat: the models it serves, which are loaded, and its model memory."""
    models = [{"name": m, "sizeGB": size, "loadSeconds": 30, "loaded": m in loaded} for m, size in SIZES.items()]
    capability = {"modelMemoryGB": 24, "installedModels": list(SIZES), "models": models}
    body = {"phase": "Ready", "lastHeartbeatTime": wire_time(utcnow()), "capability": capability}
    await kube.patch_status(FleetNode, node, body)


async def cold_starts(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return [event for event in await events(kube, namespace) if event["reason"] == "ColdStart"]


def placed(task: AgenticTask) -> bool:
    return task.status.assigned_node is not None


async def test_warm_nodes_first_a_bounded_wait_then_a_cold_start_that_spares_queued_work(
    kube: Kube, namespace: str, made: dict[str, list[str]]
) -> None:
    pool, wait, held = unique("pool"), unique("wait"), unique("held")
    n1, n2, n3 = (f"{pool}-n{i}" for i in (1, 2, 3))
    for node, loaded in ((n1, ["a"]), (n2, ["b"]), (n3, [])):
        made["nodes"].append(node)
        await make_node(kube, node, labels={"pool": pool})
        await advertise(kube, node, *loaded)
    for name, spec in ((wait, {"coldStartDelay": 30}), (held, {"maxRunning": 0})):
        await kube.create(TaskQueue.model_validate({"metadata": {"name": name}, "spec": spec}))
        made["queues"].append(name)
    await kube.create(Agent.model_validate({"metadata": {"name": "patient", "namespace": namespace},
                                            "spec": {"model": "b", "coldStartDelay": 300}}))  # fmt: skip
    here: dict[str, Any] = {"requiredCapability": {"nodeSelector": {"pool": pool}}}
    clock = Clock()
    async with running_controller(kube, namespace, clock=clock) as controller:
        await make_task(kube, namespace, "first", modelRef="b", queue=wait, **here)
        first = await wait_for(kube, namespace, "first", placed)
        assert (first.status.assigned_node, condition(first, "Scheduled")) == (n2, ("True", "FleetNodeAssigned"))

        # n2 is busy: the next task for b waits for it; the held queue's task is placed in the same pass (its
        # QueueFull says the pass ran), and counts as queued for a
        await make_task(kube, namespace, "second", modelRef="b", queue=wait, **here)
        await make_task(kube, namespace, "queued-for-a", modelRef="a", queue=held, **here)
        await wait_for(kube, namespace, "queued-for-a", lambda t: condition(t, "Blocked") == ("True", "QueueFull"))
        second = await kube.get(AgenticTask, "second", namespace)
        assert not placed(second)
        why = line_up(controller.cache, clock())[(namespace, "second")]
        assert (why.reason, why.message) == ("WaitingForWarmNode", "waiting up to 30 s for a node with b loaded")

        # past its coldStartDelay it starts cold: on n3, since loading b on n1 would evict the a that a task awaits
        clock.advance(31)
        # NB: a heartbeat whose free RAM moved (as a real worker's does) wakes the controller on the moved clock
        await kube.patch_status(FleetNode, n3, {"capability": {"availableRAMGB": 15}})
        second = await wait_for(kube, namespace, "second", placed)
        assert (second.status.assigned_node, condition(second, "Scheduled")) == (n3, ("True", "FleetNodeAssigned"))
        cold = await until(lambda: cold_starts(kube, namespace), bool)
        assert [e["involvedObject"]["name"] for e in cold] == ["second"]
        assert "where b must be loaded first (about 30 s)" in cold[0]["message"]
        sample = controller.metrics.registry.get_sample_value
        waits = "foreman_placement_warm_wait_seconds"
        assert sample("foreman_placement_model_loads_total") == 1
        assert sample(f"{waits}_sum", {"outcome": "cold"}) == 30

        # n3 loads b; a task with a longer wait (its Agent's) gets n3 once second is done there, with no load
        await advertise(kube, n3, "b")
        await make_task(kube, namespace, "third", agentRef="patient", executor="agent", **here)
        await make_task(kube, namespace, "queued-for-a-too", modelRef="a", queue=held, **here)
        await wait_for(kube, namespace, "queued-for-a-too", lambda t: condition(t, "Blocked") is not None)
        assert not placed(await kube.get(AgenticTask, "third", namespace))
        finished = {"phase": "Succeeded", "verdict": "GO", "finishedAt": wire_time(utcnow())}
        await kube.patch_status(AgenticTask, "second", finished, namespace=namespace)
        third = await wait_for(kube, namespace, "third", placed)
        assert (third.status.assigned_node, condition(third, "Scheduled")) == (n3, ("True", "FleetNodeAssigned"))
        assert sample("foreman_placement_model_loads_total") == 1
        assert (sample(f"{waits}_count", {"outcome": "warm"}), sample(f"{waits}_count", {"outcome": "cold"})) == (2, 1)
