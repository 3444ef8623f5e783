"""The controller's outcome metrics against a real kube-apiserver: tasks run to success and failure, counted once
from its /metrics endpoint, and not again by a controller started after they finished."""

import asyncio
import time
import uuid

import aiohttp

from foreman.api.http.client import Kube
from foreman.api.models.envelope import ResultEnvelope, Usage
from foreman.api.models.queues import TaskQueue
from foreman.api.models.tasks import AgenticTask
from foreman.api.runtime.health import HealthServer
from foreman.controller.loop import Controller
from foreman.worker.executors.base import ExecutionContext
from foreman.worker.executors.stub import StubExecutor
from tests.integration.helpers import make_task, running_controller, running_worker, wait_for

COMPLETED = "foreman_task_completed_total"


class MeteredExecutor:
    """Reports usage as the agent executor does (envelope extra.usage), which becomes status.usage."""

    name = "metered"

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        usage = Usage(prompt_tokens=1200, completion_tokens=300, total_tokens=1500, turns=2).to_wire()
        return ResultEnvelope(kind=task.spec.kind, verdict="GO", summary="reviewed", extra={"usage": usage})


Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(controller: Controller) -> Series:
    """The controller's /metrics, as served in production (HealthServer), by series name and labels."""
    server = HealthServer(controller.metrics.registry, healthy=lambda: True, ready=lambda: True)
    await server.start(0, host="127.0.0.1")
    try:
        async with aiohttp.ClientSession() as session:
            text = await (await session.get(f"http://127.0.0.1:{server.port}/metrics")).text()
    finally:
        await server.stop()
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            name, _, labels = name_labels.partition("{")
            pairs = (pair.split("=", 1) for pair in labels.rstrip("}").split(",") if pair)
            series[(name, frozenset((key, raw.strip('"')) for key, raw in pairs))] = float(value)
    return series


def total(series: Series, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (found, have), value in series.items() if found == name and wanted <= have)


async def test_finished_tasks_are_counted_once_by_outcome(kube: Kube, namespace: str) -> None:
    node, team = f"m-{uuid.uuid4().hex[:6]}", f"team-{uuid.uuid4().hex[:6]}"
    await kube.create(TaskQueue.model_validate({"metadata": {"name": team}, "spec": {"weight": 1}}))
    try:
        series, restarted = await run_and_scrape(kube, namespace, node, team)
    finally:
        await kube.delete(TaskQueue, team)
    mine = {"namespace": namespace, "queue": "default"}
    assert total(series, COMPLETED, **mine, kind="verify", verdict="GO", outcome="Succeeded") == 2
    assert total(series, COMPLETED, **mine, kind="verify", verdict="NO-GO", outcome="Succeeded") == 1
    assert total(series, COMPLETED, **mine, kind="verify", verdict="INCOMPLETE", outcome="Timeout") == 1
    assert total(series, COMPLETED, **mine, kind="verify", verdict="INCOMPLETE", outcome="Cancelled") == 1
    assert total(series, COMPLETED, **mine, kind="review", verdict="GO", outcome="Succeeded") == 1
    assert total(series, COMPLETED, namespace=namespace, queue=team, outcome="Succeeded") == 1  # it named the queue
    assert total(series, COMPLETED) == len(NAMES)  # nothing counted twice (the controller's own writes, the watch)
    assert total(series, "foreman_task_tokens_total", **mine, kind="review", direction="prompt") == 1200
    assert total(series, "foreman_task_tokens_total", **mine, kind="review", direction="completion") == 300
    assert total(series, "foreman_task_duration_seconds_count") == len(NAMES)
    assert total(series, "foreman_task_queue_wait_seconds_count", queue="default") == len(NAMES) - 2  # never placed
    assert total(series, "foreman_task_queue_wait_seconds_count", queue=team) == 1
    assert total(restarted, COMPLETED) == 0  # finished before that controller started: counted already


NAMES = ("ok-1", "ok-2", "nogo", "slow", "review", "cancelled", "queued")


async def run_and_scrape(kube: Kube, namespace: str, node: str, team: str) -> tuple[Series, Series]:
    """Run NAMES to their end and scrape the controller; then scrape one started afterwards, holding them all."""
    plugins = {"stub": StubExecutor, "metered": MeteredExecutor}
    async with (
        running_controller(kube, namespace) as controller,
        running_worker(
            kube,
            node,
            namespace,
            plugins,
            max_concurrent_tasks=4,  # type: ignore[arg-type]
        ),
    ):
        await make_task(kube, namespace, "ok-1")
        await make_task(kube, namespace, "ok-2")
        await make_task(kube, namespace, "nogo", payload={"verdict": "NO-GO"})
        await make_task(kube, namespace, "slow", payload={"sleepSeconds": 30}, timeoutSeconds=1)
        await make_task(kube, namespace, "review", kind="review", executor="metered")
        await make_task(kube, namespace, "cancelled", cancel=True)
        await make_task(kube, namespace, "queued", queue=team)
        for name in NAMES:
            await wait_for(kube, namespace, name, lambda t: t.phase in ("Succeeded", "Failed"), timeout=20)
        deadline = time.monotonic() + 10
        while total(series := await scrape(controller), COMPLETED) < len(NAMES) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the watch brings the last finish a moment after the API shows it
    async with running_controller(kube, namespace) as restarted:
        assert len(restarted.cache.by_phase["Succeeded"] | restarted.cache.by_phase["Failed"]) == len(NAMES)
        return series, await scrape(restarted)
