"""TaskQueues against the real apiserver: weighted turns, a queue at its cap, a queue that does not exist yet, and
`foreman get tasks` / `foreman queue list` agreeing with the order the controller then places in."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from foreman.api.http.client import Kube
from foreman.api.models.base import utcnow, wire_time
from foreman.api.models.queues import TaskQueue
from foreman.api.models.tasks import AgenticTask
from tests.clusters import Cluster
from tests.integration.helpers import (
    delete_nodes,
    foreman_cli,
    make_node,
    make_task,
    phase_is,
    running_controller,
    wait_for,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def queues(kube: Kube) -> AsyncIterator[list[str]]:
    """TaskQueues are cluster-scoped: each test's go, whatever happens."""
    made: list[str] = []
    yield made
    for name in made:
        await kube.delete(TaskQueue, name)


async def make_queue(kube: Kube, made: list[str], name: str, **spec: Any) -> None:
    await kube.create(TaskQueue.model_validate({"metadata": {"name": name}, "spec": spec}))
    made.append(name)


def pinned(pool: str) -> dict[str, Any]:
    """Only this test's node takes the task (other tests' nodes may be about)."""
    return {"requiredCapability": {"nodeSelector": {"pool": pool}}}


async def scheduled(kube: Kube, namespace: str) -> set[str]:
    tasks = (await kube.list(AgenticTask, namespace=namespace)).items
    return {task.name for task in tasks if task.phase == "Scheduled"}


async def finish(kube: Kube, namespace: str, name: str) -> None:
    """What a worker's last write does: the task Succeeded (its slot and its queue's place are free)."""
    now = wire_time(utcnow())
    patch = {"phase": "Succeeded", "verdict": "GO", "finishedAt": now}
    await kube.patch_status(AgenticTask, name, patch, namespace=namespace)


async def test_two_queues_with_weights_3_to_1_share_a_full_fleet_3_to_1(
    kube: Kube, namespace: str, queues: list[str]
) -> None:
    team, heavy, light, pool, node = unique("team"), unique("heavy"), unique("light"), unique("pool"), unique("n")
    await kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {"team": team}}}
    )
    await make_queue(kube, queues, heavy, weight=3, namespaceSelector={"matchLabels": {"team": team}})
    await make_queue(kube, queues, light, weight=1)
    for index in range(10):  # by its namespace, and by name
        await make_task(kube, namespace, f"h{index}", **pinned(pool))
        await make_task(kube, namespace, f"l{index}", queue=light, **pinned(pool))
    await make_node(kube, node, slots=8, labels={"pool": pool})
    try:
        async with running_controller(kube, namespace):
            placed = await _scheduled_count(kube, namespace, 8)  # the node's slots: no more can come
            assert sorted(name[0] for name in placed) == ["h"] * 6 + ["l"] * 2
            await _queue_status(kube, heavy, running=6, pending=4)
            await _queue_status(kube, light, running=2, pending=8)
    finally:
        await delete_nodes(kube, node)


async def _scheduled_count(kube: Kube, namespace: str, count: int) -> set[str]:
    """Wait on the tasks themselves: a queue's status counts the controller's placements as it makes them, and may
    be written before the last task's own write lands."""
    async with asyncio.timeout(15):
        while len(placed := await scheduled(kube, namespace)) < count:
            await asyncio.sleep(0.05)
    return placed


async def _queue_status(kube: Kube, name: str, **counts: int) -> TaskQueue:
    async with asyncio.timeout(15):
        while True:
            queue = await kube.get(TaskQueue, name)
            if all(getattr(queue.status, field) == value for field, value in counts.items()):
                return queue
            await asyncio.sleep(0.05)


def _rows(out: str) -> dict[str, dict[str, str]]:
    lines = out.strip().splitlines()
    header = re.split(r"\s{2,}", lines[0])
    split = (re.split(r"\s{2,}", line) for line in lines[1:])
    return {cells[0]: dict(zip(header, cells, strict=True)) for cells in split}


async def test_a_capped_queue_places_in_the_order_get_tasks_shows_and_a_missing_queue_waits_for_its_creation(
    kube: Kube, namespace: str, cluster: Cluster, queues: list[str]
) -> None:
    capped, later, pool, node = unique("capped"), unique("later"), unique("pool"), unique("n")
    await make_queue(kube, queues, capped, maxRunning=1)
    for name, priority in (("low", 0), ("high", 9), ("mid", 5)):
        await make_task(kube, namespace, name, queue=capped, priority=priority, **pinned(pool))
    await make_task(kube, namespace, "orphan", queue=later, **pinned(pool))
    await make_node(kube, node, slots=4, labels={"pool": pool})
    try:
        code, out, err = await foreman_cli(cluster, "get", "tasks", "-n", namespace)
        assert code == 0, err
        rows = _rows(out)
        line = {name: rows[name]["POSITION"] for name in ("high", "mid", "low")}
        assert line == {"high": "1", "mid": "2", "low": "3"}
        assert {rows[name]["QUEUE"] for name in line} == {capped}
        assert (rows["orphan"]["REASON"], rows["orphan"]["POSITION"]) == ("QueueNotFound", "-")
        order = sorted(line, key=lambda name: int(line[name]))
        async with running_controller(kube, namespace):
            first = await wait_for(kube, namespace, order[0], phase_is("Scheduled"))
            for name in order[1:]:
                held = await wait_for(kube, namespace, name, lambda t: _blocked(t) == "QueueFull")
                assert held.phase == "Pending"
            assert first.name == "high"
            code, out, _ = await foreman_cli(cluster, "queue", "list")
            assert _rows(out)[capped] | {"SHARE": "-"} == {
                "NAME": capped, "WEIGHT": "1", "MAX": "1", "RUNNING": "1", "PENDING": "2", "SHARE": "-",
                "WEIGHT-SHARE": _rows(out)[capped]["WEIGHT-SHARE"],
            }  # fmt: skip
            code, out, _ = await foreman_cli(cluster, "describe", "task", "mid", "-n", namespace)
            assert f"Pending in number 1 in the line of queue {capped}: TaskQueue {capped} is at its maxRunning" in out
            for done, following in itertools.pairwise(order):
                await finish(kube, namespace, done)
                await wait_for(kube, namespace, following, phase_is("Scheduled"))
                assert await scheduled(kube, namespace) == {following}  # the cap holds: one at a time, in line
            assert _blocked(await kube.get(AgenticTask, "orphan", namespace)) == "QueueNotFound"
            await make_queue(kube, queues, later)
            await wait_for(kube, namespace, "orphan", phase_is("Scheduled"))
    finally:
        await delete_nodes(kube, node)


def _blocked(task: AgenticTask) -> str | None:
    found = next((c for c in task.status.conditions if c.type == "Blocked" and c.status == "True"), None)
    return found.reason if found else None
