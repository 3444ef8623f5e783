"""No object can stop a daemon: a task the apiserver stores nested 3,000 levels deep, results too large or too deep
for etcd or a decoder, an executor that throws. Each ends its own task with a clear reason; the controller, the
worker and `foreman get` go on, and the task beside them runs."""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp
import pytest

from foreman.api.http.client import Kube
from foreman.api.http.features import Release
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.tasks import AgenticTask
from foreman.worker.executors.base import ExecutionContext
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, make_task, running_controller, running_worker, wait_for


def finished(task: AgenticTask) -> bool:
    return task.phase in ("Succeeded", "Failed")


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


async def create_raw(cluster: Cluster, namespace: str, body: str) -> None:
    """POST a task as bytes (our own client would refuse to encode it): what any user's tool could store."""
    token = cluster.tokens["admin"]
    url = f"{cluster.server}/apis/foreman.dev/v1alpha1/namespaces/{namespace}/agentictasks"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers, ssl=context) as answer:
        assert answer.status == 201, await answer.text()


class Hoarder:
    """An executor whose result is what a hostile model could make of `extra`."""

    name = "hoard"

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        nested: dict[str, Any] = {}
        for _ in range(900):
            nested = {"a": nested}
        extra = {"huge": "x" * 1_600_000} if task.name == "huge" else {"deep": nested}
        return ResultEnvelope(kind="freeform", verdict="GO", summary="done", extra={"kept": 1, **extra})


class Thrower:
    name = "throw"

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        raise RecursionError("maximum recursion depth exceeded")


async def test_a_task_nested_3000_deep_fails_undecodable_and_stops_nothing(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    if await kube.server_version() < Release(1, 30):
        # NB: v1.20.2's apiserver stores no such object: it answers 504 after its 34 s request timeout, decoding
        pytest.skip("kube-apiserver v1.20 times out decoding a 3,000-deep body (504): nothing is stored to decode")
    poison = {
        "apiVersion": "foreman.dev/v1alpha1", "kind": "AgenticTask",
        "metadata": {"name": "poison", "namespace": namespace}, "spec": {"kind": "verify", "payload": "@@"},
    }  # fmt: skip
    await create_raw(cluster, namespace, json.dumps(poison).replace('"@@"', '{"inputs": ' + deep(3000) + "}"))
    async with running_controller(kube, namespace), running_worker(kube, "poison-box", namespace):
        await make_task(kube, namespace, "beside")
        beside = await wait_for(kube, namespace, "beside", finished, timeout=20)
        failed = await wait_for(kube, namespace, "poison", finished, timeout=20)
    assert beside.phase == "Succeeded"
    assert (failed.phase, failed.status.failure_reason) == ("Failed", "Undecodable")
    assert any("nested more than 64 levels deep" in (c.message or "") for c in failed.status.conditions)
    code, out, err = await foreman_cli(cluster, "get", "tasks", "-n", namespace)
    assert code == 0, err
    assert "Undecodable" in out


async def test_results_too_large_or_too_deep_and_executors_that_throw_end_their_task(
    kube: Kube, namespace: str
) -> None:
    plugins = {"hoard": Hoarder, "throw": Thrower}
    async with running_controller(kube, namespace), running_worker(kube, "hoard-box", namespace, plugins):  # type: ignore[dict-item]
        for name, executor in (("huge", "hoard"), ("deep", "hoard"), ("thrown", "throw")):
            await make_task(kube, namespace, name, executor=executor)
        huge = await wait_for(kube, namespace, "huge", finished, timeout=20)
        nested = await wait_for(kube, namespace, "deep", finished, timeout=20)
        thrown = await wait_for(kube, namespace, "thrown", finished, timeout=20)
    for task, dropped in ((huge, "huge"), (nested, "deep")):
        assert task.phase == "Succeeded", task.status
        assert task.status.result is not None
        assert task.status.result.extra["kept"] == 1
        assert task.status.result.extra["dropped"] == f"too large or too deep to store: {dropped}"
    assert (thrown.phase, thrown.status.failure_reason) == ("Failed", "ExecutorError")
