"""The controller's footprint as it runs in production: `foreman controller` in its own process against the real
apiserver, with N tasks placed on N one-slot FleetNodes that heartbeat every 30 s (the shape LLMKube's Go controller
was measured in on the same apiserver): its RSS with them all in its cache, and its CPU while nothing happens but the
heartbeats (process CPU seconds over the window / the window's length).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

from reporting import report, say, target

from foreman.api.http.client import Kube
from foreman.api.models.base import utcnow
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.localcluster import Identity, LocalCluster

NAMESPACE = "bench-footprint"
SIZE = 1000
HEARTBEAT_S = 30.0
WINDOW_S = 60.0
"""Two heartbeats of every node."""


def _wire_now() -> str:
    return utcnow().isoformat().replace("+00:00", "Z")


async def _bounded(calls: list[Awaitable[object]], limit: int = 32) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Awaitable[object]) -> None:
        async with semaphore:
            await call

    await asyncio.gather(*(one(call) for call in calls))


async def _make_node(admin: Kube, name: str) -> None:
    await admin.create(FleetNode.model_validate({"metadata": {"name": name}, "spec": {"maxConcurrentTasks": 1}}))
    capability = {"accelerator": "cpu", "totalRAMGB": 16, "availableRAMGB": 16, "maxContextTokens": 8192}
    patch = {"phase": "Ready", "capability": capability, "lastHeartbeatTime": _wire_now()}
    await admin.patch_status(FleetNode, name, patch)


async def _heartbeats(admin: Kube, names: list[str], stop: asyncio.Event) -> None:
    """Every node once per HEARTBEAT_S, spread evenly (as 1,000 workers started at random moments would be)."""
    gap = HEARTBEAT_S / len(names)
    started = time.monotonic()
    for beat, name in enumerate(itertools.cycle(names)):
        if stop.is_set():
            return
        await admin.patch_status(FleetNode, name, {"phase": "Ready", "lastHeartbeatTime": _wire_now()})
        await asyncio.sleep(max(0.0, started + (beat + 1) * gap - time.monotonic()))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _memory_mib(pid: int) -> dict[str, float]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: int(line.split()[1]) / 1024 for line in lines for key in ("VmRSS", "VmHWM") if line.startswith(key)}


async def _all_scheduled(admin: Kube) -> bool:
    tasks = await admin.list(AgenticTask, namespace=NAMESPACE)
    return sum(task.phase == "Scheduled" for task in tasks.items) >= SIZE


async def footprint(cluster: LocalCluster, admin: Kube, logs: Path) -> None:
    await admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    names = [f"fp-{i:04}" for i in range(SIZE)]
    await _bounded([_make_node(admin, name) for name in names])
    kubeconfig = str(cluster.kubeconfig(Identity.CONTROLLER))
    command = ["-m", "foreman.cli", "controller", "--kubeconfig", kubeconfig, "--namespace", NAMESPACE,
               "--no-leader-elect", "--health-port", "0"]  # fmt: skip
    stop = asyncio.Event()
    beating = asyncio.create_task(_heartbeats(admin, names, stop))
    with logs.open("a") as log:
        controller = await asyncio.create_subprocess_exec(sys.executable, *command, stdout=log, stderr=log)
    try:
        bodies = [{"metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"kind": "verify"}} for name in names]
        await _bounded([admin.create(AgenticTask.model_validate(body)) for body in bodies])
        while not await _all_scheduled(admin):
            await asyncio.sleep(1)
        await asyncio.sleep(5)  # NB: the last placements' writes and answers are not idle work
        before, started = _cpu_seconds(controller.pid), time.monotonic()
        await asyncio.sleep(WINDOW_S)
        idle = (_cpu_seconds(controller.pid) - before) / (time.monotonic() - started)
        memory = _memory_mib(controller.pid)
    finally:
        controller.terminate()
        await asyncio.wait_for(controller.wait(), 30)
        stop.set()
        await beating
    # NB: FleetNodes are cluster-wide: the sections that run after this one must not see 1,000 extra nodes
    await _bounded([admin.delete(FleetNode, name) for name in names])
    await admin.delete_raw("v1", "Namespace", NAMESPACE)
    report["footprint"] = {"tasks": SIZE, "nodes": SIZE, "rss_mib": round(memory["VmRSS"], 1),
                           "peak_rss_mib": round(memory["VmHWM"], 1), "idle_cores": round(idle, 4)}  # fmt: skip
    say(f"footprint: `foreman controller` with {SIZE:,} tasks placed on {SIZE:,} one-slot nodes: RSS "
        f"{memory['VmRSS']:.0f} MiB (peak {memory['VmHWM']:.0f}), idle CPU {idle:.3f} cores with every node "
        f"heartbeating each {HEARTBEAT_S:g} s")  # fmt: skip
    target(f"controller RSS, {SIZE:,} tasks + {SIZE:,} nodes", memory["VmRSS"], 64, unit=" MiB")
    target(f"controller idle CPU, {SIZE:,} nodes heartbeating every {HEARTBEAT_S:g} s", idle, 0.03, unit=" cores")
