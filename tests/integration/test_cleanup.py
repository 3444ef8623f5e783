"""Finished tasks against a real kube-apiserver: deleted when their time to live is over (with the transcript they
own), kept while a dependant still needs them, and never in what a worker lists, however many its node ran.

The controller runs on a clock the tests move; tasks are finished by writing their status as a worker would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.http.errors import NotFound
from foreman.api.http.features import tasks_on_node, writes_node_label
from foreman.api.models import transcript
from foreman.api.models.base import utcnow, wire_time
from foreman.api.models.tasks import NODE_LABEL, AgenticTask
from foreman.controller.expiry import TimeToLive
from foreman.controller.loop import Controller
from foreman.worker.config import WorkerConfig
from foreman.worker.loop import Worker
from tests.clock import Clock
from tests.integration.helpers import condition, delete_nodes, make_node, make_task, running_controller, wait_for

MINUTE = timedelta(minutes=1)


async def finish(kube: Kube, namespace: str, name: str, phase: str, at: datetime, **status: Any) -> None:
    body = {"phase": phase, "finishedAt": wire_time(at), **status}
    body.update({"verdict": "GO"} if phase == "Succeeded" else {"failureReason": "ExecutorError"})
    await kube.patch_status(AgenticTask, name, body, namespace=namespace)


async def gone(kube: Kube, api_version: str, kind: str, name: str, namespace: str, timeout: float = 10) -> None:
    """Until the object is deleted (tests may poll; the product watches)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await kube.get_raw(api_version, kind, name, namespace)
        except NotFound:
            return
        assert time.monotonic() < deadline, f"{kind} {name} is still there"
        await asyncio.sleep(0.02)


async def exists(kube: Kube, name: str, namespace: str) -> bool:
    try:
        await kube.get(AgenticTask, name, namespace)
    except NotFound:
        return False
    return True


async def move(controller: Controller, clock: Clock, by: timedelta) -> None:
    clock.now += by
    controller.queue.poke()


async def test_time_to_live_deletes_each_outcome_at_its_time_and_spares_a_needed_upstream(
    kube: Kube, namespace: str
) -> None:
    clock, start = Clock(), utcnow()
    ttl = TimeToLive(after_success=MINUTE, after_failure=10 * MINUTE)
    async with running_controller(kube, namespace, clock=clock, ttl=ttl) as controller:
        for name in ("ok", "bad", "up"):
            await make_task(kube, namespace, name)
        await make_task(kube, namespace, "own", ttlSecondsAfterFinished=1200)  # its own wins over the minute
        await make_task(kube, namespace, "down", dependsOn=["up"])  # no node: it stays Pending
        ok = await kube.get(AgenticTask, "ok", namespace)
        for attempt in (1, 2):  # one transcript per attempt: all deleted with the task
            await kube.apply(transcript.configmap(ok, "{}\n", attempt))
        precious = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "precious", "namespace": namespace}}
        await kube.apply(precious)  # named by a task that does not own it: never deleted with it
        attempts = [{"number": 1, "finishedAt": wire_time(start)}, {"number": 2, "finishedAt": wire_time(start)}]
        await finish(kube, namespace, "ok", "Succeeded", start, transcriptRef=transcript.configmap_name("ok", 2),
                     attemptHistory=attempts)  # fmt: skip
        await finish(kube, namespace, "bad", "Failed", start, transcriptRef="precious")
        for name in ("up", "own"):
            await finish(kube, namespace, name, "Succeeded", start)
        await wait_for(kube, namespace, "down", lambda t: condition(t, "Blocked") == ("True", "NoFittingNode"))

        await move(controller, clock, MINUTE + timedelta(seconds=1))
        await gone(kube, "foreman.dev/v1alpha1", "AgenticTask", "ok", namespace)
        await gone(kube, "v1", "ConfigMap", transcript.configmap_name("ok"), namespace)
        await gone(kube, "v1", "ConfigMap", transcript.configmap_name("ok", 2), namespace)
        await move(controller, clock, 9 * MINUTE)
        await gone(kube, "foreman.dev/v1alpha1", "AgenticTask", "bad", namespace)
        assert await kube.get_raw("v1", "ConfigMap", "precious", namespace)
        assert [await exists(kube, name, namespace) for name in ("up", "own", "down")] == [True, True, True]
        down = await kube.get(AgenticTask, "down", namespace)
        assert condition(down, "Blocked") == ("True", "NoFittingNode")  # never DependencyNotFound

        await finish(kube, namespace, "down", "Failed", clock.now)  # the dependant moves on: its upstream goes
        await gone(kube, "foreman.dev/v1alpha1", "AgenticTask", "up", namespace)
        assert await exists(kube, "own", namespace)
        await move(controller, clock, 10 * MINUTE)
        for name in ("own", "down"):
            await gone(kube, "foreman.dev/v1alpha1", "AgenticTask", name, namespace)
    deleted = controller.metrics.deleted
    assert (deleted.labels("Succeeded")._value.get(), deleted.labels("Failed")._value.get()) == (3, 2)


async def test_a_workers_lists_hold_only_its_unfinished_tasks_after_a_thousand_finished(
    kube: Kube, namespace: str
) -> None:
    """The worker's safety-net poll and its restart recovery read what `own_tasks` lists: a thousand finished tasks of
    its node must not be in it. Where workers select by the node label (older servers), the finished tasks carry it
    as a worker leaves them, and the controller takes it off."""
    node, elsewhere = f"busy-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    release = await kube.server_version()
    labelled = writes_node_label(release)
    limit = asyncio.Semaphore(32)

    async def task_on(name: str, on: str, phase: str) -> None:
        labels = {NODE_LABEL: on} if labelled else {}
        body = {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": {"kind": "verify"}}
        async with limit:
            await kube.create(AgenticTask.model_validate(body))
            status = {"phase": phase, "assignedNode": on}
            if phase in ("Succeeded", "Failed"):
                status.update(finishedAt=wire_time(utcnow()), verdict="GO" if phase == "Succeeded" else "NO-GO")
            await kube.patch_status(AgenticTask, name, status, namespace=namespace)

    await asyncio.gather(
        *(task_on(f"done-{i}", node, "Succeeded" if i % 4 else "Failed") for i in range(1000)),
        task_on("waiting", node, "Scheduled"),
        task_on("working", node, "Running"),
        task_on("theirs", elsewhere, "Running"),
    )
    worker = Worker(kube, WorkerConfig(node_name=node, namespaces=[namespace]))
    worker.selection = tasks_on_node(node, release)  # as its run() does
    # NB: by label, the finished tasks are listed until the controller has taken it off them
    assert len((await worker.own_tasks(cached=False)).items) == (1002 if labelled else 2)
    for name in (node, elsewhere):
        await make_node(kube, name, slots=4)  # heard from: the controller leaves their tasks where they are
    try:
        async with running_controller(kube, namespace):  # no time to live: the finished tasks stay
            deadline = time.monotonic() + 60
            while len(polled := (await worker.own_tasks(cached=True)).items) > 2:
                assert time.monotonic() < deadline, f"the poll still lists {len(polled)} tasks"
                await asyncio.sleep(0.1)
            recovery = (await worker.own_tasks(cached=False, namespace=namespace)).items
    finally:
        await delete_nodes(kube, node, elsewhere)
    assert sorted(t.name for t in polled) == ["waiting", "working"]
    assert sorted(t.name for t in recovery) == ["waiting", "working"]
    assert len((await kube.list(AgenticTask, namespace=namespace)).items) == 1003  # kept, only not listed
