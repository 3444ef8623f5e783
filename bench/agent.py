"""The agent executor's own cost: loop overhead per turn against a model server of fixed speed, and 50 agents at
once on one worker (throughput against the server's capacity, memory per running agent).

The model server is the scripted one of the tests and the demo (`api/tooling/scripted_llm.py`), in a process of its
own so that its CPU is not the loop's; it answers every turn after a fixed delay, with one read/edit-kind tool call.
The controller and the worker run in this process against the local apiserver, so a turn's cost includes writing
the transcript.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from reporting import report, say, target

from foreman.api.http.client import Kube
from foreman.api.models.agents import Agent
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.localcluster import Identity, LocalCluster
from foreman.controller.config import ControllerConfig
from foreman.controller.loop import Controller
from foreman.worker.config import WorkerConfig
from foreman.worker.loop import Worker

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench-agent"
TURNS = 10
FIFTY_TURNS = 20
"""Turns of each of the 50 agents at once: a short fix's worth (a local model answers in seconds, not tenths)."""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


SERVER_PIDS: list[int] = []


@asynccontextmanager
async def model_server(turns: int, delay: float) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.api.tooling.scripted_llm", "--bench", str(turns), str(delay),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    SERVER_PIDS[:] = [process.pid]
    url = await process.stdout.readline()
    try:
        yield url.decode().strip()
    finally:
        process.terminate()
        await process.wait()


@asynccontextmanager
async def system(cluster: LocalCluster, url: str, workspaces: Path, slots: int) -> AsyncIterator[Worker]:
    stop = asyncio.Event()
    clients = [
        await Kube.connect(str(cluster.kubeconfig(identity))) for identity in (Identity.CONTROLLER, Identity.WORKER)
    ]
    controller = Controller(clients[0], ControllerConfig(namespaces=(NAMESPACE,), stale_after=timedelta(seconds=120)))
    settings = {"endpoint": url, "workspaceRoot": str(workspaces)}
    config = WorkerConfig(
        node_name=f"llm-{slots}", namespaces=[NAMESPACE], max_concurrent_tasks=slots, executors={"agent": settings}
    )
    worker = Worker(clients[1], config)
    runners = [asyncio.create_task(controller.run(stop)), asyncio.create_task(worker.run(stop))]
    while not (controller.is_ready() and controller.cache.nodes.get(config.node_name)):
        await asyncio.sleep(0.05)
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.gather(*runners, return_exceptions=True)
        for client in clients:
            await client.close()


async def run_tasks(admin: Kube, prefix: str, count: int) -> list[AgenticTask]:
    """Create `count` agent tasks at once and wait (on a watch) until all succeeded; return them finished."""
    names = {f"{prefix}-{i}" for i in range(count)}
    spec = {"kind": "freeform", "executor": "agent", "agentRef": "bench", "payload": {"prompt": "Go."}}
    await asyncio.gather(
        *(admin.create(AgenticTask.model_validate({"metadata": {"name": n, "namespace": NAMESPACE}, "spec": spec}))
          for n in names)
    )  # fmt: skip
    finished: dict[str, AgenticTask] = {}
    async for event in admin.watch(AgenticTask, namespace=NAMESPACE):
        for task in getattr(event, "items", None) or [getattr(event, "object", None)]:
            if task is not None and task.name in names and task.phase in ("Succeeded", "Failed"):
                finished[task.name] = task
        if len(finished) == count:
            break
    failed = [t.name for t in finished.values() if t.status.verdict != "GO"]
    assert not failed, f"agent tasks did not finish GO: {failed}"
    return list(finished.values())


def seconds(task: AgenticTask) -> float:
    assert task.status.started_at is not None
    assert task.status.finished_at is not None
    return (task.status.finished_at - task.status.started_at).total_seconds()


async def task_overhead(
    admin: Kube, cluster: LocalCluster, workspaces: Path, turns: int, delay: float, runs: int
) -> tuple[float, list[float]]:
    """The median of (task time - model time) over `runs` tasks of `turns` turns of `delay` seconds each."""
    async with model_server(turns, delay) as url, system(cluster, url, workspaces, 1):
        tasks = await run_tasks(admin, f"overhead-{turns}-{int(delay * 1000)}", runs)
    durations = [seconds(task) for task in tasks]
    return statistics.median(d - turns * delay for d in durations), durations


async def loop_overhead(admin: Kube, cluster: LocalCluster, workspaces: Path, delay: float, runs: int) -> None:
    """The task's overhead over the model's time, and the cost of one more turn (its tool call, its transcript
    write): the overhead's growth from TURNS to 2 x TURNS turns, per turn. The first includes what a task costs once
    (claim, workspace, the last transcript write awaited before the result); the second does not."""
    overhead, durations = await task_overhead(admin, cluster, workspaces, TURNS, delay, runs)
    longer, _ = await task_overhead(admin, cluster, workspaces, 2 * TURNS, delay, runs)
    server = TURNS * delay
    per_turn_ms = overhead / TURNS * 1000
    marginal_ms = max(0.0, longer - overhead) / TURNS * 1000
    report.setdefault("agent", {})[f"turn_{delay:g}s"] = {
        "task_seconds": [round(d, 3) for d in durations], "server_seconds": server,
        "overhead_per_turn_ms": round(per_turn_ms, 2), "overhead_fraction": round(overhead / server, 4),
        "marginal_per_turn_ms": round(marginal_ms, 2),
    }  # fmt: skip
    say(f"agent loop, {TURNS} turns of {delay:g} s: task {server + overhead:.2f} s for {server:.2f} s of model time; "
        f"overhead {per_turn_ms:.1f} ms per turn ({overhead / server:.1%}); "
        f"each further turn {marginal_ms:.1f} ms")  # fmt: skip
    if delay >= 1:
        target("agent loop overhead per turn at 1 s turns / turn time", overhead / server, 0.05)
    target(f"agent overhead per read/edit tool call ({delay:g} s turns)", marginal_ms, 20, unit=" ms")


async def fifty_at_once(admin: Kube, cluster: LocalCluster, workspaces: Path, delay: float) -> None:
    count = 50
    async with model_server(FIFTY_TURNS, delay) as url, system(cluster, url, workspaces, count):
        base = rss_mib()
        peak = base
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_mib())
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        pids = {"worker and controller": os.getpid(), "model server": SERVER_PIDS[0],
                "kube-apiserver": cluster.pids["apiserver"], "etcd": cluster.pids["etcd"]}  # fmt: skip
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        tasks = await run_tasks(admin, "fifty", count)
        elapsed = time.monotonic() - started
        cores = {name: round((cpu_seconds(pid) - before[name]) / elapsed, 2) for name, pid in pids.items()}
        sampling = False
        await sampler
    capacity_seconds = FIFTY_TURNS * delay  # the server answers all 50 at once, each turn after `delay`
    ratio = capacity_seconds / elapsed
    per_agent = (peak - base) / count
    report.setdefault("agent", {})["fifty_at_once"] = {
        "seconds": round(elapsed, 2), "server_bound_seconds": capacity_seconds, "ratio": round(ratio, 3),
        "rss_base_mib": round(base, 1), "rss_peak_mib": round(peak, 1), "rss_per_agent_mib": round(per_agent, 2),
        "median_task_seconds": round(statistics.median(seconds(t) for t in tasks), 2), "cores": cores,
    }  # fmt: skip
    say(f"  cores used while they ran: {cores}")
    say(f"agent, {count} at once on one worker ({FIFTY_TURNS} turns of {delay:g} s): {elapsed:.1f} s "
        f"for {capacity_seconds:.1f} s of server capacity; RSS {base:.0f} -> {peak:.0f} MiB, "
        f"{per_agent:.2f} MiB per running agent")  # fmt: skip
    target("agent throughput, 50 at once / server capacity", ratio, 0.9, below=False)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def agent_benchmarks(cluster: LocalCluster, workspaces: Path) -> None:
    async with await Kube.connect(str(cluster.kubeconfig())) as admin:
        await admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        await admin.create(Agent.model_validate({"metadata": {"name": "bench", "namespace": NAMESPACE}}))
        await loop_overhead(admin, cluster, workspaces, 0.2, runs=5)
        await loop_overhead(admin, cluster, workspaces, 1.0, runs=3)
        await fifty_at_once(admin, cluster, workspaces, 1.0)
