"""Controller and worker together against a real kube-apiserver: the loop closes."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from foreman.api.http.client import Kube
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import NODE_LABEL, AgenticTask
from foreman.worker.config import WorkerConfig
from foreman.worker.executors.base import ExecutionContext, load_executors
from foreman.worker.executors.command import CommandExecutor
from foreman.worker.executors.stub import StubExecutor
from tests.clusters import Cluster
from tests.integration.helpers import (
    RunningWorker,
    condition,
    delete_nodes,
    foreman_cli,
    make_task,
    phase_is,
    running_controller,
    running_worker,
    wait_for,
)

AGENT = [sys.executable, str(Path(__file__).with_name("agent.py"))]
terminal = lambda t: t.phase in ("Succeeded", "Failed")  # noqa: E731


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class ExplodingExecutor:
    name = "explode"

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        raise RuntimeError("the model server went away")


class LiarExecutor:
    name = "liar"

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        return {"schemaVersion": "foreman.v1", "kind": "verify", "verdict": "PERHAPS"}  # type: ignore[return-value]


class CountingKube(Kube):
    """The real client, counting the consistent lists of tasks it sends: each one has the apiserver read and decode
    every task of the namespace from etcd."""

    consistent_lists = 0

    async def list(self, model: Any, *, cached: bool = False, **selectors: Any) -> Any:
        if model is AgenticTask and not cached:
            self.consistent_lists += 1
        return await super().list(model, cached=cached, **selectors)


async def test_a_starting_worker_reads_its_tasks_once_for_its_recovery_and_its_watch(
    namespace: str, cluster: Cluster
) -> None:
    node = unique("once")
    async with await CountingKube.connect(str(cluster.kubeconfig())) as kube:
        body = {"metadata": {"name": "orphan", "namespace": namespace, "labels": {NODE_LABEL: node}},
                "spec": {"kind": "verify"}}  # fmt: skip
        await kube.create(AgenticTask.model_validate(body))
        await kube.patch_status(AgenticTask, "orphan", {"phase": "Running", "assignedNode": node}, namespace=namespace)
        async with running_worker(kube, node, namespace):
            requeued = await wait_for(kube, namespace, "orphan", phase_is("Pending"))
            await kube.patch_status(
                AgenticTask, "orphan", {"phase": "Scheduled", "assignedNode": node}, namespace=namespace
            )
            await wait_for(kube, namespace, "orphan", terminal)  # the watch that started from that read sees it
        assert kube.consistent_lists == 1
    assert condition(requeued, "Running") == ("False", "WorkerRestartRecovery")


def test_builtin_executors_are_registered_as_entry_points() -> None:
    found = load_executors()
    assert found["stub"] is StubExecutor
    assert found["command"] is CommandExecutor


async def test_a_stub_task_succeeds_and_the_node_is_registered(kube: Kube, namespace: str) -> None:
    node = unique("w")
    async with running_controller(kube, namespace), running_worker(kube, node, namespace, labels={"pool": "t"}):
        registered = await kube.get(FleetNode, node)
        assert registered.status.phase == "Ready"
        assert registered.metadata.labels == {"pool": "t"}
        assert registered.status.capability.total_ramgb > 0
        assert registered.status.capability.accelerator in ("cpu", "cuda", "rocm", "metal")
        assert registered.status.capability.executors == ["stub"]  # command is installed but has no argv here
        await make_task(kube, namespace, "hello", payload={"sleepSeconds": 0.1})
        done = await wait_for(kube, namespace, "hello", terminal)
    assert (done.phase, done.status.verdict, done.status.assigned_node) == ("Succeeded", "GO", node)
    assert done.status.result is not None
    assert done.status.result.schema_version == "foreman.v1"
    assert done.status.claimed_at is not None
    assert done.status.finished_at is not None
    assert condition(done, "Finished") == ("True", "Completed")


async def test_a_worker_is_synced_once_the_watch_of_each_of_its_namespaces_has_listed(
    kube: Kube, namespace: str
) -> None:
    """What `make bench` waits on before its clock starts (a worker's start-up lists are not throughput)."""
    other = f"{namespace}-b"
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    node = unique("synced")
    running = RunningWorker(kube, WorkerConfig(node_name=node, namespaces=[namespace, other], drain_grace=1))
    assert not running.worker.synced()
    try:
        worker = await running.started()
        async with asyncio.timeout(10):
            while not worker.synced():
                await asyncio.sleep(0.01)
    finally:
        await running.stop()
        await delete_nodes(kube, node)


async def test_command_executor_outcomes(kube: Kube, namespace: str, tmp_path: Path) -> None:
    node = unique("cmd")
    settings = {"executors": {"command": {"argv": AGENT}}, "max_concurrent_tasks": 8}
    executors = {"command": CommandExecutor, "explode": ExplodingExecutor, "liar": LiarExecutor}  # type: ignore[dict-item]
    hostile = "$(touch /tmp/pwned); `id`; rm -rf / && echo ok | cat > /etc/passwd"
    cases = {
        "go": ("Succeeded", "GO", None),
        "nogo": ("Succeeded", "NO-GO", None),
        "envelope": ("Succeeded", "GATE-PASS", None),
        "malformed": ("Failed", "INCOMPLETE", "ExecutorContractViolation"),
        "killed": ("Succeeded", "NO-GO", None),
    }
    async with running_controller(kube, namespace), running_worker(kube, node, namespace, executors, **settings):
        for mode in cases:
            await make_task(
                kube, namespace, mode, executor="command", payload={"prompt": hostile, "inputs": {"mode": mode}}
            )
        await make_task(kube, namespace, "crash", executor="explode")
        await make_task(kube, namespace, "lies", executor="liar")
        await make_task(kube, namespace, "unplaceable", executor="does-not-exist")
        # A task that reaches a worker without its executor anyway (placed by hand here) fails there.
        await make_task(kube, namespace, "unknown", executor="does-not-exist")
        await kube.patch_status(
            AgenticTask, "unknown", {"phase": "Scheduled", "assignedNode": node}, namespace=namespace
        )
        await kube.patch(AgenticTask, "unknown", {"metadata": {"labels": {NODE_LABEL: node}}}, namespace=namespace)
        await make_task(
            kube,
            namespace,
            "slow",
            executor="command",
            timeoutSeconds=1,
            payload={"inputs": {"mode": "sleep", "pidfile": str(tmp_path / "slow.pid")}},
        )
        results = {
            name: await wait_for(kube, namespace, name, terminal, timeout=20)
            for name in [*cases, "crash", "lies", "unknown", "slow"]
        }
    for mode, expected in cases.items():
        task = results[mode]
        assert (task.phase, task.status.verdict, task.status.failure_reason) == expected, mode
    go = results["go"].status.result
    assert go is not None
    assert go.extra["exitCode"] == 0
    assert f"prompt: {hostile}" in go.extra["stdoutTail"]  # passed through literally, never to a shell
    assert not _read(Path("/tmp/pwned"))  # the file a shell would have created
    assert results["killed"].status.result.extra["exitCode"] == -9  # type: ignore[union-attr]
    assert (results["crash"].status.failure_reason, results["crash"].status.verdict) == ("ExecutorError", "INCOMPLETE")
    assert "the model server went away" in results["crash"].status.result.summary  # type: ignore[union-attr]
    assert results["lies"].status.failure_reason == "ExecutorContractViolation"
    assert results["unknown"].status.failure_reason == "ExecutorNotFound"
    unplaceable = await kube.get(AgenticTask, "unplaceable", namespace)
    assert unplaceable.phase == "Pending"
    assert condition(unplaceable, "Blocked") == ("True", "NoFittingNode")
    assert "executor does-not-exist" in next(c.message for c in unplaceable.status.conditions if c.type == "Blocked")
    assert results["slow"].status.failure_reason == "Timeout"
    assert not _alive(int(_read(tmp_path / "slow.pid")))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _running_pid(kube: Kube, namespace: str, name: str, pidfile: Path) -> int:
    await wait_for(kube, namespace, name, phase_is("Running"))
    while not (text := await asyncio.to_thread(_read, pidfile)):
        await asyncio.sleep(0.02)
    return int(text)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("how", ["spec.cancel", "deletion"])
async def test_cancel_stops_a_running_executor_within_two_seconds(
    kube: Kube, namespace: str, tmp_path: Path, how: str
) -> None:
    node = unique("cancel")
    pidfile = tmp_path / "pid"
    settings = {"executors": {"command": {"argv": AGENT}}}
    async with running_controller(kube, namespace), running_worker(kube, node, namespace, **settings):
        await make_task(
            kube, namespace, "long", executor="command", payload={"inputs": {"mode": "sleep", "pidfile": str(pidfile)}}
        )
        pid = await _running_pid(kube, namespace, "long", pidfile)
        started = time.monotonic()
        if how == "spec.cancel":
            await kube.patch(AgenticTask, "long", {"spec": {"cancel": True}}, namespace=namespace)
            cancelled = await wait_for(kube, namespace, "long", phase_is("Failed"), timeout=2)
            assert cancelled.status.failure_reason == "Cancelled"
        else:
            await kube.delete(AgenticTask, "long", namespace)
        while _alive(pid):
            assert time.monotonic() - started < 2, "executor still running 2 s after the cancel"
            await asyncio.sleep(0.02)


async def test_retryable_failure_goes_back_with_backoff_then_fails(kube: Kube, namespace: str) -> None:
    node = unique("retry")
    async with (
        running_controller(kube, namespace),
        running_worker(kube, node, namespace, {"explode": ExplodingExecutor}, retry_backoff=0.3),  # type: ignore[dict-item]
    ):
        await make_task(kube, namespace, "flaky", executor="explode", retries=1)
        retried = await wait_for(kube, namespace, "flaky", lambda t: t.status.attempts == 1)
        assert retried.status.not_before is not None
        failed = await wait_for(kube, namespace, "flaky", phase_is("Failed"))
    assert (failed.status.failure_reason, failed.status.attempts) == ("ExecutorError", 1)


async def test_two_workers_sharing_a_node_name_execute_each_task_exactly_once(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    node = unique("twin")
    log = tmp_path / "executions.log"
    config = {"executors": {"command": {"argv": AGENT}}, "max_concurrent_tasks": 4}
    from foreman.worker.config import WorkerConfig

    twins = [RunningWorker(kube, WorkerConfig(node_name=node, namespaces=[namespace], **config)) for _ in range(2)]
    try:
        async with running_controller(kube, namespace):
            for twin in twins:
                await twin.started()
            for i in range(200):
                await make_task(kube, namespace, f"t{i:03}", executor="command", payload={"inputs": {"log": str(log)}})
            for i in range(200):
                await wait_for(kube, namespace, f"t{i:03}", terminal, timeout=60)
    finally:
        for twin in twins:
            await twin.stop()
        await delete_nodes(kube, node)
    executions = log.read_text().splitlines()
    assert len(executions) == 200
    assert len(set(executions)) == 200
    conflicts = sum(t.worker.metrics.claim_conflicts._value.get() for t in twins)
    print(f"claim conflicts between the twins: {conflicts:g}")


def _worker_process(cluster: Cluster, node: str, namespace: str, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "foreman.cli", "worker", "--kubeconfig", str(cluster.kubeconfig()), "--node-name",
            node, "-n", namespace, "--health-port", "0", "--heartbeat-interval", "0.5", *extra]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def test_worker_killed_mid_task_recovers_it_on_restart(kube: Kube, namespace: str, cluster: Cluster) -> None:
    node = unique("killed")
    async with running_controller(kube, namespace):
        first = _worker_process(cluster, node, namespace)
        try:
            await make_task(kube, namespace, "survivor", payload={"sleepSeconds": 2})
            await wait_for(kube, namespace, "survivor", phase_is("Running"), timeout=20)
            first.send_signal(signal.SIGKILL)
            first.wait()
            second = _worker_process(cluster, node, namespace)
            try:
                done = await wait_for(kube, namespace, "survivor", terminal, timeout=20)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(10)
        finally:
            first.kill()
            await delete_nodes(kube, node)
    assert (done.phase, done.status.attempts) == ("Succeeded", 1)
    assert condition(done, "ClaimExpired") is None


async def test_sigterm_drains_and_hands_back_unfinished_work(kube: Kube, namespace: str, cluster: Cluster) -> None:
    node = unique("drain")
    async with running_controller(kube, namespace):
        worker = _worker_process(cluster, node, namespace, "--drain-grace", "0.5")
        try:
            await make_task(kube, namespace, "too-long", payload={"sleepSeconds": 30})
            await wait_for(kube, namespace, "too-long", phase_is("Running"), timeout=20)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(10) == 0, worker.stderr.read() if worker.stderr else ""
            handed_back = await kube.get(AgenticTask, "too-long", namespace)
            assert (await kube.get(FleetNode, node)).status.phase == "Stopped"  # drain done: gone, not draining
        finally:
            worker.kill()
            await delete_nodes(kube, node)
    assert handed_back.phase in ("Pending", "Scheduled")  # back in the queue (the controller may already retry it)
    assert handed_back.status.attempts == 0
    assert condition(handed_back, "Running") == ("False", "NodeDraining")


async def test_timeouts_and_retries_are_warning_events_and_say_how_long_they_ran(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    """The README promised failures and requeues as Events; a worker's timeouts and retries wrote none, and the
    failure envelope read elapsedSec 0.0 after 1 s of work."""
    node = unique("events")
    async with running_controller(kube, namespace), running_worker(kube, node, namespace, retry_backoff=0.1):
        await make_task(kube, namespace, "slow", timeoutSeconds=1, retries=1, payload={"sleepSeconds": 30})
        failed = await wait_for(kube, namespace, "slow", phase_is("Failed"), timeout=30)
    await delete_nodes(kube, node)
    events = await kube.list_raw("v1", "Event", namespace, "involvedObject.name=slow")
    warnings = [(e["type"], e["reason"], e["source"]["component"]) for e in events if e["reason"] == "Timeout"]
    assert warnings == [("Warning", "Timeout", "foreman-worker")] * 2  # the retry, then the failure
    assert any("retry 1 of 1" in e["message"] for e in events)
    assert failed.status.result is not None
    assert failed.status.result.elapsed_sec >= 1.0
    code, _, err = await foreman_cli(cluster, "result", "slow", "-n", namespace)
    assert code == 0, err  # a worker's failure has an envelope
    await make_task(kube, namespace, "never-ran", cancel=True)
    await kube.patch_status(
        AgenticTask, "never-ran", {"phase": "Failed", "failureReason": "Cancelled"}, namespace=namespace
    )
    code, _, err = await foreman_cli(cluster, "result", "never-ran", "-n", namespace)
    assert (code, err.strip()) == (2, "error: never-ran Failed (Cancelled) before any result envelope was written")
