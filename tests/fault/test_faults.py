"""Break things for real and check the promise: no task lost, none executed twice, nothing stuck.

Executions are counted by the executed process itself (tests/integration/agent.py appends to a file), outside
our code path. Sizes are CI-sized unless FOREMAN_SOAK=1 (`make soak`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from foreman.api.http import requests
from foreman.api.http.client import Kube
from foreman.api.http.errors import Invalid
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.localcluster import LocalCluster
from foreman.controller.trim import EMPTY_PAYLOAD
from foreman.worker.config import WorkerConfig
from tests.clusters import Cluster
from tests.fault.report import ROWS, Row, size
from tests.integration.helpers import (
    RunningWorker,
    condition,
    delete_nodes,
    make_node,
    make_task,
    phase_is,
    running_controller,
    wait_for,
)

AGENT = [sys.executable, str(Path(__file__).parents[1] / "integration" / "agent.py")]
TERMINAL = ("Succeeded", "Failed")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def worker_config(node: str, namespace: str, **settings: object) -> WorkerConfig:
    return WorkerConfig(
        node_name=node, namespaces=[namespace], executors={"command": {"argv": AGENT}}, max_concurrent_tasks=4,
        drain_grace=1, **settings,  # type: ignore[arg-type]
    )  # fmt: skip


async def create_tasks(kube: Kube, namespace: str, count: int, log: Path) -> list[str]:
    names = [f"t{i:04}" for i in range(count)]
    semaphore = asyncio.Semaphore(16)

    async def create(name: str) -> None:
        async with semaphore:
            await make_task(kube, namespace, name, executor="command", payload={"inputs": {"log": str(log)}})

    await asyncio.gather(*(create(name) for name in names))
    return names


async def all_terminal(kube: Kube, namespace: str, count: int, timeout: float) -> list[AgenticTask]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = (await kube.list(AgenticTask, namespace=namespace)).items
        if len(tasks) == count and all(t.phase in TERMINAL for t in tasks):
            return tasks
        if time.monotonic() > deadline:
            stuck = Counter(t.phase for t in tasks)
            raise AssertionError(f"not all terminal after {timeout:g} s: {dict(stuck)}")
        await asyncio.sleep(0.25)


def executions(log: Path) -> Counter[str]:
    return Counter(log.read_text().splitlines()) if log.exists() else Counter()


def check_and_record(scenario: str, names: list[str], namespace: str, tasks: list[AgenticTask], log: Path,
                     faults: int, settled: float) -> None:  # fmt: skip
    ran = executions(log)
    lost = [
        n for n in names if ran[f"{namespace}/{n}"] == 0 or next(t for t in tasks if t.name == n).phase != "Succeeded"
    ]
    doubled = [key for key, count in ran.items() if count > 1]
    ROWS.append(Row(scenario, len(names), faults, len(lost), len(doubled), settled))
    assert not lost, f"lost: {lost[:10]}"
    assert not doubled, f"executed twice: {doubled[:10]}"


async def test_contended_claims(kube: Kube, namespace: str, tmp_path: Path) -> None:
    """Three workers started with the same node name race for every task."""
    node, log = unique("contended"), tmp_path / "executions.log"
    count = size(300, 1000)
    twins = [RunningWorker(kube, worker_config(node, namespace)) for _ in range(3)]
    try:
        async with running_controller(kube, namespace):
            for twin in twins:
                await twin.started()
            names = await create_tasks(kube, namespace, count, log)
            started = time.monotonic()
            tasks = await all_terminal(kube, namespace, count, timeout=size(240, 900))
    finally:
        for twin in twins:
            await twin.stop()
        await delete_nodes(kube, node)
    check_and_record(
        "contended claims (3 workers, 1 node name)", names, namespace, tasks, log, 0, time.monotonic() - started
    )


async def _spawn_controller(cluster: Cluster, namespace: str, identity: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "controller", "--kubeconfig", str(cluster.kubeconfig()), "-n", namespace,
        "--lease-namespace", namespace, "--lease-duration", "2", "--identity", identity, "--health-port", "0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def test_controller_killed_repeatedly(kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path) -> None:
    """SIGKILL the leading controller at random moments (a standby waits on the Lease); restart it each time."""
    log, count, kills = tmp_path / "executions.log", size(150, 500), 5
    nodes = [unique("ck-a"), unique("ck-b")]
    workers = [RunningWorker(kube, worker_config(node, namespace)) for node in nodes]
    controllers = {name: await _spawn_controller(cluster, namespace, name) for name in ("c0", "c1")}
    try:
        for worker in workers:
            await worker.started()
        names = await create_tasks(kube, namespace, count, log)
        for round_ in range(kills):
            await asyncio.sleep(random.uniform(0.5, 2.0))
            with contextlib.suppress(Exception):
                leader = (await kube.get_lease("foreman-controller", namespace)).spec.holder_identity
                if leader in controllers:
                    controllers.pop(leader).kill()
            controllers[f"c{round_ + 2}"] = await _spawn_controller(cluster, namespace, f"c{round_ + 2}")
        fault_ended = time.monotonic()
        tasks = await all_terminal(kube, namespace, count, timeout=size(180, 600))
    finally:
        for process in controllers.values():
            process.terminate()
            await process.wait()
        for worker in workers:
            await worker.stop()
        await delete_nodes(kube, *nodes)
    check_and_record(
        "controller SIGKILLed (2 replicas)", names, namespace, tasks, log, kills, time.monotonic() - fault_ended
    )


@pytest.mark.parametrize("component", ["apiserver", "etcd"])
async def test_control_plane_restart(
    kube: Kube, namespace: str, local_cluster: LocalCluster, tmp_path: Path, component: str
) -> None:
    """Stop kube-apiserver (or etcd) for 5 s mid-run and start it again on the same data."""
    cluster = local_cluster
    log, count, node = tmp_path / "executions.log", size(100, 300), unique(f"restart-{component}")
    worker = RunningWorker(kube, worker_config(node, namespace, poll_every=2))
    try:
        async with running_controller(kube, namespace):
            await worker.started()
            names = await create_tasks(kube, namespace, count, log)
            while len(executions(log)) < count // 3:
                await asyncio.sleep(0.05)
            cluster.stop_process(component)
            await asyncio.sleep(5)
            if component == "etcd":
                cluster.start_etcd()
            else:
                cluster.start_apiserver()
            await asyncio.to_thread(cluster.wait_ready)
            fault_ended = time.monotonic()
            tasks = await all_terminal(kube, namespace, count, timeout=size(120, 300))
    finally:
        await worker.stop()
        await delete_nodes(kube, node)
    check_and_record(f"{component} stopped 5 s", names, namespace, tasks, log, 1, time.monotonic() - fault_ended)


async def test_skewed_worker_clock_is_not_reclaimed(kube: Kube, namespace: str) -> None:
    """Heartbeats written 30 s in the past or future: liveness is judged by when the controller saw them change."""
    behind, ahead = unique("behind"), unique("ahead")
    try:
        async with running_controller(kube, namespace, stale_after=timedelta(seconds=1)):
            for node in (behind, ahead):
                await make_node(kube, node, slots=1)
            await make_task(kube, namespace, "on-skewed-a")
            await make_task(kube, namespace, "on-skewed-b")
            for _ in range(15):  # 3 s: three times the staleness threshold
                for node, offset in ((behind, -30), (ahead, 30)):
                    await _heartbeat_at(kube, node, offset)
                await asyncio.sleep(0.2)
            for name in ("on-skewed-a", "on-skewed-b"):
                task = await kube.get(AgenticTask, name, namespace)
                assert (task.phase, task.status.attempts) == ("Scheduled", 0)
            for node in (behind, ahead):
                assert (await kube.get(FleetNode, node)).status.phase == "Ready"
    finally:
        await delete_nodes(kube, behind, ahead)


async def _heartbeat_at(kube: Kube, node: str, offset_seconds: float) -> None:
    from foreman.api.models.base import utcnow, wire_time

    moment = utcnow() + timedelta(seconds=offset_seconds)
    await kube.patch_status(FleetNode, node, {"phase": "Ready", "lastHeartbeatTime": wire_time(moment)})


async def test_bad_input_never_stalls_the_controller(kube: Kube, namespace: str) -> None:
    node, poor = unique("bad-input"), unique("zero-ram")
    try:
        await make_node(kube, node, slots=10, ram=64)
        await make_node(kube, poor, slots=10, ram=0, labels={"pool": "poor"})
        async with running_controller(kube, namespace) as controller:
            too_many = {
                "apiVersion": "foreman.dev/v1alpha1",
                "kind": "AgenticTask",
                "metadata": {"name": "too-many-deps"},
                "spec": {"kind": "verify", "dependsOn": [f"d{i}" for i in range(10_000)]},
            }
            with pytest.raises(ValidationError, match="at most 256"):  # the models refuse it...
                AgenticTask.model_validate(too_many)
            path = requests.resource_path(AgenticTask, namespace=namespace)
            with pytest.raises(Invalid, match="dependsOn"):  # ...and so does the apiserver, for kubectl users
                await kube._send(requests.Request("POST", path, body=too_many))
            for i in range(500):  # a 500-deep chain whose root can never run
                await make_task(kube, namespace, f"chain-{i}", dependsOn=[f"chain-{i - 1}"] if i else [],
                                requiredCapability={"accelerator": "rocm"} if i == 0 else {})  # fmt: skip
            await make_task(kube, namespace, "huge", payload={"prompt": "x" * 1_000_000})
            await make_task(
                kube, namespace, "needs-ram", requiredCapability={"minRAMGB": 1, "nodeSelector": {"pool": "poor"}}
            )
            started = time.monotonic()
            await make_task(kube, namespace, "canary")
            await wait_for(kube, namespace, "canary", phase_is("Scheduled"), timeout=5)
            canary_seconds = time.monotonic() - started
            huge = await wait_for(kube, namespace, "huge", phase_is("Scheduled"))
            assert controller.cache.task((namespace, "huge")).spec.payload == EMPTY_PAYLOAD  # type: ignore[union-attr]
            assert huge.spec.payload.prompt == "x" * 1_000_000  # stored in full, just not cached by the controller
            tail = await wait_for(
                kube, namespace, "chain-499", lambda t: condition(t, "Blocked") is not None, timeout=30
            )
            assert condition(tail, "Blocked") == ("True", "WaitingForDependencies")
            poor_fit = await wait_for(kube, namespace, "needs-ram", lambda t: condition(t, "Blocked") is not None)
            assert condition(poor_fit, "Blocked") == ("True", "NoFittingNode")
    finally:
        await delete_nodes(kube, node, poor)
    assert canary_seconds < 5


async def test_tokens_never_reach_logs_or_results(kube: Kube, namespace: str, cluster: Cluster,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    node = unique("secrets")
    worker = RunningWorker(kube, worker_config(node, namespace))
    try:
        async with running_controller(kube, namespace):
            await worker.started()
            await make_task(kube, namespace, "talkative", executor="command", payload={"inputs": {"mode": "nogo"}})
            done = await wait_for(kube, namespace, "talkative", lambda t: t.phase in TERMINAL, timeout=20)
    finally:
        await worker.stop()
        await delete_nodes(kube, node)
    captured = capsys.readouterr()
    everything = captured.out + captured.err + done.model_dump_json()
    assert "talkative" in everything  # the logs were captured at all
    for token in cluster.tokens.values():
        assert token not in everything


async def test_network_faults_between_daemons_and_apiserver(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    """Latency, connection resets and a silent stall on the daemons' path to the apiserver (a proxy in between)."""
    from foreman.api.http.client import RetryPolicy
    from foreman.controller.config import ControllerConfig
    from foreman.controller.loop import Controller
    from tests.fault.proxy import FaultyProxy
    from tests.integration.helpers import RunningController

    proxy = FaultyProxy(cluster.apiserver_port)
    await proxy.start()
    kubeconfig = tmp_path / "via-proxy"
    kubeconfig.write_text(cluster.kubeconfig().read_text().replace(f":{cluster.apiserver_port}", f":{proxy.port}"))
    # NB: short timeouts so a stalled request or watch is given up within seconds, not the production 30 s / 75 s
    retry = RetryPolicy(request_timeout=3)
    log, count, node = tmp_path / "executions.log", size(100, 300), unique("netfault")
    daemon_kube = await Kube.connect(str(kubeconfig), retry=retry)
    worker_kube = await Kube.connect(str(kubeconfig), retry=retry)
    config = ControllerConfig(namespaces=(namespace,), leader_election=False, watch_timeout=2)
    controller = RunningController(Controller(daemon_kube, config))
    worker = RunningWorker(worker_kube, worker_config(node, namespace, watch_timeout=2, poll_every=2))
    faults = 0
    try:
        await controller.started()
        await worker.started()
        names = await create_tasks(kube, namespace, count, log)
        proxy.latency = 0.05
        await asyncio.sleep(2)
        proxy.latency = 0
        for _ in range(2):
            await asyncio.sleep(1)
            faults += 1 if proxy.reset() else 0
        await asyncio.sleep(1)
        proxy.stall()
        faults += 1
        fault_ended = time.monotonic()
        tasks = await all_terminal(kube, namespace, count, timeout=size(120, 300))
    finally:
        await controller.stop()
        await worker.stop()
        await proxy.stop()
        await daemon_kube.close()
        await worker_kube.close()
        await delete_nodes(kube, node)
    check_and_record(
        "network: latency, 2 resets, a stall", names, namespace, tasks, log, faults + 1, time.monotonic() - fault_ended
    )


async def _worker_process(cluster: Cluster, node: str, namespace: str, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "worker", "--kubeconfig", str(cluster.kubeconfig()), "--node-name", node,
        "-n", namespace, "--health-port", "0", "--heartbeat-interval", "0.5", *flags,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _finished_on(
    kube: Kube, namespace: str, name: str, rescuer: str, timeout: float
) -> tuple[AgenticTask, float]:
    """Start a worker on node `rescuer` right after a kill; the task once finished, and the seconds it took."""
    killed_at = time.monotonic()
    backup = RunningWorker(kube, worker_config(rescuer, namespace, heartbeat_interval=0.5))
    await backup.started()
    try:
        done = await wait_for(kube, namespace, name, lambda t: t.phase in TERMINAL, timeout=timeout)
    finally:
        await backup.stop()
    return done, time.monotonic() - killed_at


async def test_worker_killed_mid_task_is_reclaimed_or_fails_at_the_limit(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    """SIGKILL a worker while it runs a task and never restart it: the task moves to another node (attempts 1);
    with a claim-expiry limit of 1 it fails with ClaimExpiryLimitReached instead of sitting in Running."""
    doomed, rescuer, unlucky = unique("doomed"), unique("rescuer"), unique("unlucky")
    stale = {"stale_after": timedelta(seconds=2)}
    try:
        async with running_controller(kube, namespace, max_claim_expiries=3, **stale):
            victim = await _worker_process(cluster, doomed, namespace)
            await make_task(kube, namespace, "survivor", payload={"sleepSeconds": 3})
            running = await wait_for(kube, namespace, "survivor", phase_is("Running"), timeout=20)
            assert running.status.assigned_node == doomed
            victim.kill()
            await victim.wait()
            done, settled = await _finished_on(kube, namespace, "survivor", rescuer, timeout=30)
        assert (done.phase, done.status.assigned_node, done.status.attempts) == ("Succeeded", rescuer, 1)
        assert condition(done, "ClaimExpired") == ("True", "NodeLost")

        async with running_controller(kube, namespace, max_claim_expiries=1, **stale):
            victim = await _worker_process(cluster, unlucky, namespace, "--label", "pool=unlucky")
            await make_task(kube, namespace, "doomed-task", payload={"sleepSeconds": 30},
                            requiredCapability={"nodeSelector": {"pool": "unlucky"}})  # fmt: skip
            await wait_for(kube, namespace, "doomed-task", phase_is("Running"), timeout=20)
            victim.kill()
            await victim.wait()
            failed = await wait_for(kube, namespace, "doomed-task", phase_is("Failed"), timeout=20)
        assert failed.status.failure_reason == "ClaimExpiryLimitReached"
    finally:
        await delete_nodes(kube, doomed, rescuer, unlucky)
    ROWS.append(Row("worker SIGKILLed mid-task (not restarted)", 2, 2, 0, 0, settled))


async def test_worker_sigtermed_then_sigkilled_mid_drain_loses_its_task_to_another_node(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    """SIGTERM a worker while it runs a task, then SIGKILL it 2 s later (a supervisor's stop timeout, shorter than
    the drain grace): its node stays Draining and falls silent; the task must not read Running for ever."""
    doomed, rescuer = unique("mid-drain"), unique("after-drain")
    try:
        async with running_controller(kube, namespace, stale_after=timedelta(seconds=2)):
            victim = await _worker_process(cluster, doomed, namespace, "--drain-grace", "60")
            await make_task(kube, namespace, "interrupted", payload={"sleepSeconds": 6})  # outlasts SIGTERM + 2 s
            await wait_for(kube, namespace, "interrupted", phase_is("Running"), timeout=20)
            victim.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while (await kube.get(FleetNode, doomed)).status.phase != "Draining":
                assert time.monotonic() < deadline, "the worker never started draining"
                await asyncio.sleep(0.05)
            await asyncio.sleep(2)  # the supervisor's stop timeout: this is the fault, not a wait for a condition
            victim.kill()
            await victim.wait()
            done, settled = await _finished_on(kube, namespace, "interrupted", rescuer, timeout=size(30, 60))
            lost_node = await kube.get(FleetNode, doomed)
    finally:
        await delete_nodes(kube, doomed, rescuer)
    stuck = 0 if done.phase == "Succeeded" else 1
    ROWS.append(Row("worker SIGTERMed, SIGKILLed 2 s into its drain", 1, 1, stuck, 0, settled))
    assert (done.phase, done.status.assigned_node, done.status.attempts) == ("Succeeded", rescuer, 1)
    assert condition(done, "ClaimExpired") == ("True", "NodeLost")
    assert lost_node.status.phase == "NotReady"
