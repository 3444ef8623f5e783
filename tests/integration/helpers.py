"""Helpers for integration tests: nodes that heartbeat on demand, controllers in the test's event loop, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from foreman.api.http import requests
from foreman.api.http.client import Kube
from foreman.api.http.errors import NotFound
from foreman.api.models.base import utcnow, wire_time
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.controller.config import ControllerConfig
from foreman.controller.loop import Controller
from foreman.worker.config import WorkerConfig
from foreman.worker.executors.base import Executor
from foreman.worker.loop import Worker
from tests.clusters import Cluster


async def make_node(
    kube: Kube,
    name: str,
    *,
    accelerator: str = "cpu",
    ram: float = 16,
    context: int = 8192,
    slots: int = 1,
    labels: dict[str, str] | None = None,
    phase: str = "Ready",
) -> FleetNode:
    node = FleetNode.model_validate(
        {"metadata": {"name": name, "labels": labels or {}}, "spec": {"maxConcurrentTasks": slots}}
    )
    await kube.create(node)
    capability = {"accelerator": accelerator, "totalRAMGB": ram, "availableRAMGB": ram, "maxContextTokens": context}
    return await kube.patch_status(
        FleetNode, name, {"phase": phase, "capability": capability, "lastHeartbeatTime": _now()}
    )


async def heartbeat(kube: Kube, name: str, phase: str = "Ready") -> None:
    await kube.patch_status(FleetNode, name, {"phase": phase, "lastHeartbeatTime": _now()})


def _now() -> str:
    return wire_time(utcnow())


async def make_task(kube: Kube, namespace: str, name: str, **spec: Any) -> AgenticTask:
    body = {"metadata": {"name": name, "namespace": namespace}, "spec": {"kind": "verify", **spec}}
    return await kube.create(AgenticTask.model_validate(body))


class Running:
    """A daemon (controller or worker) running as a task of the test's event loop."""

    def __init__(self, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]], ready: Callable[[], bool]):
        self._stop = asyncio.Event()
        self._ready = ready
        self._runner = asyncio.create_task(run(self._stop))

    async def started(self) -> None:
        while not self._ready():
            if self._runner.done():
                self._runner.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(self._runner, 60)


class RunningController(Running):
    def __init__(self, controller: Controller):
        super().__init__(controller.run, controller.synced)
        self.controller = controller

    async def started(self) -> Controller:  # type: ignore[override]
        await super().started()
        return self.controller


def controller_config(namespace: str, **settings: Any) -> ControllerConfig:
    settings.setdefault("leader_election", False)
    settings.setdefault("stale_after", timedelta(seconds=60))
    return ControllerConfig(namespaces=(namespace,), lease_namespace=namespace, **settings)


@contextlib.asynccontextmanager
async def running_controller(
    kube: Kube, namespace: str, *, clock: Callable[[], datetime] = utcnow, **settings: Any
) -> AsyncIterator[Controller]:
    running = RunningController(Controller(kube, controller_config(namespace, **settings), clock=clock))
    try:
        yield await running.started()
    finally:
        await running.stop()


async def wait_for(
    kube: Kube, namespace: str, name: str, predicate: Callable[[AgenticTask], bool], timeout: float = 10
) -> AgenticTask:
    """Poll until the task satisfies `predicate` (tests may poll; the product watches)."""
    deadline = time.monotonic() + timeout
    while True:
        task = await kube.get(AgenticTask, name, namespace)
        if predicate(task):
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} never matched; last status: {task.status.model_dump(exclude_none=True)}")
        await asyncio.sleep(0.02)


async def until(fetch: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = 10) -> Any:
    """Poll `fetch` until its value satisfies `predicate`; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never true; last value: {value}")
        await asyncio.sleep(0.02)


def phase_is(phase: str) -> Callable[[AgenticTask], bool]:
    return lambda task: task.phase == phase


def condition(task: AgenticTask, type_: str) -> tuple[str, str] | None:
    found = next((c for c in task.status.conditions if c.type == type_), None)
    return (found.status, found.reason) if found else None


async def events(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    body = await kube._send(requests.Request("GET", f"/api/v1/namespaces/{namespace}/events"))
    return list(body["items"])


async def delete_nodes(kube: Kube, *names: str) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            await kube.delete(FleetNode, name)


class RunningWorker(Running):
    def __init__(self, kube: Kube, config: WorkerConfig, executors: dict[str, type[Executor]] | None = None):
        self.worker = Worker(kube, config, executors=executors)
        super().__init__(
            self.worker.run, lambda: self.worker.registrar is not None and self.worker.registrar.node is not None
        )

    async def started(self) -> Worker:  # type: ignore[override]
        await super().started()
        return self.worker


@contextlib.asynccontextmanager
async def running_worker(
    kube: Kube, node: str, namespace: str, plugins: dict[str, type[Executor]] | None = None, **settings: Any
) -> AsyncIterator[Worker]:
    """A worker for one test; `plugins` replaces the installed executors, `settings` are WorkerConfig fields."""
    config = WorkerConfig(node_name=node, namespaces=[namespace], drain_grace=1, **settings)
    running = RunningWorker(kube, config, plugins)
    try:
        yield await running.started()
    finally:
        await running.stop()
        await delete_nodes(kube, node)


async def foreman_cli(cluster: Cluster, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run the `foreman` command in a subprocess against the test cluster: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", *args, "--kubeconfig", str(cluster.kubeconfig()),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate(stdin.encode() if stdin else None)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def exists(kube: Kube, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
    try:
        await kube.get_raw(api_version, kind, name, namespace)
    except NotFound:
        return False
    return True


async def only_crds_left(kube: Kube, made: list[dict[str, Any]]) -> None:
    """Of the objects `made`, an uninstall kept the CRDs only (and the namespace, Terminating: no namespace
    controller runs here to finish its deletion)."""
    for manifest in made:
        meta = manifest["metadata"]
        there = await exists(kube, manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        if manifest["kind"] == "CustomResourceDefinition":
            assert there, meta["name"]
        elif manifest["kind"] == "Namespace":
            assert (await kube.get_raw("v1", "Namespace", meta["name"]))["metadata"].get("deletionTimestamp")
        else:
            assert not there, f"{manifest['kind']}/{meta['name']} left behind"


def difference(stored: Any, wanted: Any, path: str = "") -> str | None:
    """Where `wanted` is not in `stored` (None: it is): every field the chart set must be there as set; the server may
    add more (defaults, metadata, status), and leaves an empty map or list out."""
    if stored is None and wanted in ({}, []):
        return None
    if isinstance(wanted, dict) and isinstance(stored, dict):
        found = (difference(stored.get(k), v, f"{path}.{k}") for k, v in wanted.items())
        return next((where for where in found if where), None)
    if isinstance(wanted, list) and isinstance(stored, list) and len(stored) == len(wanted):
        found = (difference(s, w, f"{path}[{i}]") for i, (s, w) in enumerate(zip(stored, wanted, strict=True)))
        return next((where for where in found if where), None)
    return None if stored == wanted else f"{path}: {stored!r} on the server, {wanted!r} in the chart"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def serves(port: int, path: str) -> bool:
    """Whether a daemon's health server on `port` answers 200 at `path` (/healthz, /readyz)."""
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as answer:
            return answer.status == 200
    except aiohttp.ClientConnectionError:
        return False  # not listening yet
