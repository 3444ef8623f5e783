"""The planner SDK and the task commands against a real apiserver, with a controller and a worker running."""

import asyncio
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from foreman.api.http.client import Kube
from foreman.api.http.errors import AlreadyExists
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.localcluster import Identity
from foreman.api.tooling.sdk import DependencyCycleError, ForemanClient, TaskFailed, WaitTimeout
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, make_task, running_controller, running_worker

ROOT = Path(__file__).parents[2]


@pytest.fixture
async def system(kube: Kube, namespace: str) -> AsyncIterator[ForemanClient]:
    """A controller and a worker for this namespace, and an SDK client on it."""
    async with running_controller(kube, namespace), running_worker(kube, f"sdk-{uuid.uuid4().hex[:6]}", namespace):
        yield ForemanClient(kube, namespace)


async def test_submit_wait_and_generated_names(system: ForemanClient) -> None:
    task = await system.submit(AgenticTask.new(prompt="hello", payload={"sleepSeconds": 0.1}))
    assert task.name.startswith("task-")
    envelope = await system.wait(task.name, timeout=20)
    assert (envelope.verdict, envelope.schema_version) == ("GO", "foreman.v1")


async def test_graph_as_completed_failures_and_cancel(system: ForemanClient) -> None:
    graph = [
        AgenticTask.new("fan-in", depends_on=["left", "right"]),
        AgenticTask.new("left", depends_on=["root"], payload={"sleepSeconds": 0.2}),
        AgenticTask.new("right", depends_on=["root"]),
        AgenticTask.new("root"),
    ]
    created = await system.submit_graph(graph)
    assert created[0].name == "root"
    finished = [task.name async for task in system.as_completed(["root", "left", "right", "fan-in"], timeout=30)]
    assert finished[0] == "root"
    assert finished[-1] == "fan-in"

    with pytest.raises(DependencyCycleError):
        await system.submit_graph([AgenticTask.new("x", depends_on=["y"]), AgenticTask.new("y", depends_on=["x"])])
    assert [t.name for t in await system.list()].count("x") == 0  # nothing created
    with pytest.raises(AlreadyExists):
        await system.submit(AgenticTask.new("root"))

    await system.submit(AgenticTask.new("gate", payload={"verdict": "NO-GO"}))
    await system.submit(AgenticTask.new("after-gate", depends_on=["gate"]))
    assert (await system.wait("gate", timeout=20)).verdict == "NO-GO"
    with pytest.raises(TaskFailed) as failed:
        await system.wait("after-gate", timeout=20)
    assert failed.value.reason == "UpstreamFailed"

    await system.submit(AgenticTask.new("long", payload={"sleepSeconds": 60}))
    with pytest.raises(WaitTimeout):
        await system.wait("long", timeout=0.5)
    await system.cancel("long")
    with pytest.raises(TaskFailed) as cancelled:
        await system.wait("long", timeout=10)
    assert cancelled.value.reason == "Cancelled"


async def test_cli_submit_wait_get_describe_result(system: ForemanClient, cluster: Cluster) -> None:
    ns = system.namespace
    code, out, err = await foreman_cli(cluster, "submit", "-f", str(ROOT / "examples" / "dag.yaml"), "--wait", "-n", ns)
    assert code == 0, err
    assert "agentictask/plan created" in out
    assert "report" in out.splitlines()[-2] or "report" in out
    code, out, _ = await foreman_cli(cluster, "get", "tasks", "-n", ns)
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["NAME", "PHASE", "KIND"]
    code, out, _ = await foreman_cli(cluster, "describe", "task", "report", "-n", ns)
    assert code == 0
    assert "FleetNodeAssigned" in out
    assert "Completed" in out
    assert "Clean-up:     as the controller" in out
    code, out, _ = await foreman_cli(cluster, "result", "report", "-n", ns)
    assert code == 0
    assert '"schemaVersion": "foreman.v1"' in out

    failing = "kind: AgenticTask\nmetadata: {name: nogo}\nspec: {kind: verify, payload: {verdict: NO-GO}}\n"
    code, _, _ = await foreman_cli(cluster, "submit", "-f", "-", "--wait", "-n", ns, stdin=failing)
    assert code == 1  # finished, but not with a passing verdict

    code, _, err = await foreman_cli(
        cluster, "submit", "-f", "-", "-n", ns, stdin="kind: AgenticTask\nspec: {kind: [}\n"
    )
    assert code == 2
    assert err.startswith("error: bad YAML")
    assert len(err.strip().splitlines()) == 1
    code, _, err = await foreman_cli(cluster, "result", "ghost", "-n", ns)
    assert (code, err.strip()) == (2, f"error: no task 'ghost' in namespace {ns}")


async def test_cli_without_access_or_cluster_says_so_in_one_line(cluster: Cluster, tmp_path: Path) -> None:
    nobody = cluster.kubeconfig(Identity.NOBODY)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "get", "tasks", "--kubeconfig", str(nobody), stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode().startswith("error: not allowed")
    dead = tmp_path / "kubeconfig"
    dead.write_text(nobody.read_text().replace(f":{cluster.apiserver_port}", ":1"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "get", "nodes", "--kubeconfig", str(dead),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode().startswith("error: cannot reach the Kubernetes API")
    assert len(err.decode().strip().splitlines()) == 1  # the retries are for daemons' logs, not printed here
    assert out == b""


async def test_example_planner_runs(system: ForemanClient, cluster: Cluster) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples" / "planner.py"), system.namespace,
        env={"KUBECONFIG": str(cluster.kubeconfig()), "PATH": "/usr/bin:/bin"}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0
    assert "final verdict: GO" in out.decode()


async def test_cli_submit_refuses_a_misspelled_field_and_creates_nothing(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    """`kubectl apply` refuses an unknown field; `foreman submit` dropped it and ran the task anywhere."""
    typo = "kind: AgenticTask\nmetadata: {name: typo}\nspec: {kind: verify, requiredCapabilty: {accelerator: cuda}}\n"
    code, _, err = await foreman_cli(cluster, "submit", "-f", "-", "-n", namespace, stdin=typo)
    assert (code, err.strip()) == (
        2,
        "error: stdin, document 1: unknown field spec.requiredCapabilty (did you mean requiredCapability?)",
    )
    assert (await kube.list(AgenticTask, namespace=namespace)).items == []


async def test_a_task_applied_without_a_kind_is_freeform_as_the_sdk_makes_it(kube: Kube, namespace: str) -> None:
    metadata = {"name": "kindless", "namespace": namespace}
    body = {"apiVersion": "foreman.dev/v1alpha1", "kind": "AgenticTask", "metadata": metadata, "spec": {}}
    await kube.apply(body)  # what `kubectl apply --server-side` sends
    assert (await kube.get(AgenticTask, "kindless", namespace)).spec.kind == "freeform"


async def test_cli_submit_refuses_a_task_too_large_to_store_with_the_limit_named(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    """A 2 MB prompt reached etcd and came back as a raw gRPC error after a retry."""
    big = tmp_path / "big.yaml"
    big.write_text(
        f"kind: AgenticTask\nmetadata: {{name: big}}\nspec: {{kind: verify, payload: {{prompt: {'x' * 2_000_000}}}}}\n"
    )
    code, _, err = await foreman_cli(cluster, "submit", "-f", str(big), "-n", namespace)
    assert code == 2
    assert err.startswith(f"error: {big}, document 1: agentictask big is 1.9 MiB; the limit is 1 MiB per object")
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="the limit is 1 MiB"):
        await ForemanClient(kube, namespace).submit(AgenticTask.new("big", prompt="x" * 2_000_000))
    assert (await kube.list(AgenticTask, namespace=namespace)).items == []


async def test_cli_submit_takes_a_folder_like_kubectl_apply(kube: Kube, namespace: str, cluster: Cluster,
                                                            tmp_path: Path) -> None:  # fmt: skip
    (tmp_path / "b.yaml").write_text("kind: AgenticTask\nmetadata: {name: b}\nspec: {kind: verify, dependsOn: [a]}\n")
    (tmp_path / "a.yaml").write_text("kind: AgenticTask\nmetadata: {name: a}\nspec: {kind: verify}\n")
    code, out, err = await foreman_cli(cluster, "submit", "-f", str(tmp_path), "-n", namespace)
    assert code == 0, err
    assert out.splitlines() == ["agentictask/a created", "agentictask/b created"]


@pytest.mark.parametrize("daemon", ["controller", "worker", "notifier"])
async def test_a_busy_health_port_is_one_line_naming_the_port_and_flag(cluster: Cluster, daemon: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await foreman_cli(cluster, daemon, "--health-port", str(port), "--no-leader-elect"
                                         if daemon != "worker" else "--node-name=busy-port")  # fmt: skip
    assert code == 2
    assert err.startswith(f"error: --health-port {port}: ")
    assert "in use" in err
    assert len(err.strip().splitlines()) == 1


async def test_argument_mistakes_are_one_error_line_and_there_is_a_version(cluster: Cluster) -> None:
    for args, expected in [
        (["controller", "--log-format", "xml"], "error: Invalid value for '--log-format'"),
        (["get"], "error: Missing argument 'what'"),
        (["submit", "--no-such-flag"], "error: No such option: --no-such-flag"),
    ]:
        code, out, err = await foreman_cli(cluster, *args)
        assert (code, out) == (2, ""), err
        assert err.startswith(expected)
        assert len(err.strip().splitlines()) == 1
        assert "─" not in err  # no boxed panel
    version = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "--version", stdout=asyncio.subprocess.PIPE
    )
    out_bytes, _ = await version.communicate()
    assert version.returncode == 0
    assert out_bytes.decode().startswith("foreman 0.")


async def test_cancel_of_a_finished_task_says_so_and_changes_nothing(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    await make_task(kube, namespace, "done")
    await kube.patch_status(AgenticTask, "done", {"phase": "Succeeded", "verdict": "GO"}, namespace=namespace)
    code, out, err = await foreman_cli(cluster, "cancel", "done", "-n", namespace)
    assert (code, out.strip()) == (0, "agentictask/done already Succeeded; nothing to cancel"), err
    assert not (await kube.get(AgenticTask, "done", namespace)).spec.cancel
    await make_task(kube, namespace, "waiting")
    code, out, _ = await foreman_cli(cluster, "cancel", "waiting", "-n", namespace)
    assert (code, out.strip()) == (0, "agentictask/waiting cancelled")
    assert (await kube.get(AgenticTask, "waiting", namespace)).spec.cancel


async def test_the_cli_uses_the_kubeconfig_contexts_namespace_as_kubectl_does(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(cluster.kubeconfig().read_text().replace("namespace: default", f"namespace: {namespace}"))
    assert f"namespace: {namespace}" in config.read_text()
    task = "kind: AgenticTask\nmetadata: {name: here}\nspec: {kind: verify}\n"

    async def foreman(*args: str, stdin: str | None = None) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "foreman.cli", *args, "--kubeconfig", str(config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await process.communicate(stdin.encode() if stdin else None)
        return process.returncode or 0, out.decode()

    assert await foreman("submit", "-f", "-", stdin=task) == (0, "agentictask/here created\n")
    assert (await kube.get(AgenticTask, "here", namespace)).namespace == namespace
    code, out = await foreman("get", "tasks")
    assert code == 0
    assert out.splitlines()[1].startswith("here ")


async def test_submit_wait_timeout_names_the_unfinished_tasks_and_prints_only_changes(
    namespace: str, cluster: Cluster
) -> None:
    """No controller runs: the task stays Pending. The table was reprinted whole on every change, and the timeout
    did not say which tasks were unfinished."""
    lonely = "kind: AgenticTask\nmetadata: {name: lonely}\nspec: {kind: verify}\n"
    code, out, err = await foreman_cli(
        cluster, "submit", "-f", "-", "--wait", "--timeout", "1", "-n", namespace, stdin=lonely
    )
    assert (code, err.strip()) == (3, "error: not finished after 1 s: lonely (Pending)")
    lines = out.splitlines()
    assert lines[0] == "agentictask/lonely created"
    assert lines[1].split()[:2] == ["NAME", "PHASE"]
    assert [line.split()[0] for line in lines[2:]] == ["lonely"]  # once: it never changed
    code, out, _ = await foreman_cli(cluster, "get", "tasks", "-A", "-o", "wide")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [namespace, "lonely"] for line in out.splitlines())
