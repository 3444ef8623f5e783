"""`foreman node join / rotate / leave / list` against the real apiserver: a host's own identity in one command, a
worker running with it, and everything it was given taken back on leave."""

import asyncio
import contextlib
import stat
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from foreman.api.http.client import Kube, RetryPolicy
from foreman.api.http.errors import Forbidden, NotFound, Unauthorized
from foreman.api.http.features import VALIDATING_ADMISSION_POLICY
from foreman.api.lifecycle.identity import identity_of, token_claims
from foreman.api.models.base import utcnow
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling import nodes
from foreman.api.tooling.manifests import NAMESPACE, WORKER, Manifest, worker_admission
from foreman.worker.config import WorkerConfig
from tests.clusters import Cluster
from tests.integration.helpers import (
    RunningWorker,
    delete_nodes,
    foreman_cli,
    heartbeat,
    make_node,
    make_task,
    phase_is,
    running_controller,
    running_worker,
    wait_for,
)

ONCE = RetryPolicy(attempts=1)
CHART_NAMESPACE = "fleet-elsewhere"
"""The chart's `namespace` value in the test of nodes joined to a chart installed outside foreman-system."""


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def joined(cluster: Cluster, name: str, path: Path, *args: str) -> str:
    code, out, err = await foreman_cli(cluster, "node", "join", name, "-o", str(path), "--duration", "1h", *args)
    assert (code, err) == (0, ""), err
    return out


async def identity_exists(kube: Kube, name: str, namespace: str = NAMESPACE) -> bool:
    try:
        await kube.get_raw("v1", "ServiceAccount", f"foreman-worker-{name}", namespace)
    except NotFound:
        return False
    return True


async def test_join_gives_a_host_an_identity_of_its_own_that_its_worker_runs_with(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    name, other = fresh("joined"), fresh("bystander")
    path = tmp_path / "gpu.kubeconfig"
    out = await joined(cluster, name, path, "--accelerator", "cpu", "-l", "pool=research")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    command = f"foreman worker --kubeconfig {path} --node-name {name} --accelerator cpu --label pool=research"
    assert command in out
    assert f"foreman node rotate {name}" in out
    written = yaml.safe_load(path.read_text())
    assert "certificate-authority-data" in written["clusters"][0]["cluster"]  # the host verifies the apiserver
    assert written["users"][0]["name"] == f"foreman-worker-{name}"

    await make_node(kube, other)
    async with await Kube.connect(str(path), retry=ONCE) as own:
        assert own.bearer_token is not None
        claims = token_claims(own.bearer_token)
        assert identity_of(claims, WORKER, name).kind == "per-node"
        node = await own.get(FleetNode, name)
        assert node.metadata.labels == {"pool": "research"}
        with pytest.raises(Forbidden):
            await own.patch(FleetNode, other, {"metadata": {"labels": {"taken": "yes"}}})
        async with running_worker(own, name, namespace) as worker:
            assert worker.registrar is not None
            reported = (await kube.get(FleetNode, name)).status.identity
            assert reported is not None
            assert reported.kind == "per-node"
            assert reported.token_expires_at is not None
            assert timedelta(minutes=55) < reported.token_expires_at - utcnow() <= timedelta(hours=1)
            code, listing, _ = await foreman_cli(cluster, "node", "list")
            assert code == 0
            row = next(line.split() for line in listing.splitlines() if line.startswith(name))
            assert row[1:3] == ["Ready", "per-node"]
            assert row[3] == f"{reported.token_expires_at:%Y-%m-%d}"
    code, _, err = await foreman_cli(cluster, "node", "leave", name, "--force")
    assert code == 0, err
    await delete_nodes(kube, other)


async def test_join_again_mints_a_fresh_token_and_refuses_a_node_another_identity_holds(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    name, taken = fresh("rejoined"), fresh("taken")
    await joined(cluster, name, tmp_path / "first")
    # NB: another lifetime: a v1.20 token carries no ID of its own, so two minted in one second alike are identical
    await joined(cluster, name, tmp_path / "second", "--duration", "2h")
    tokens = [yaml.safe_load((tmp_path / f).read_text())["users"][0]["user"]["token"] for f in ("first", "second")]
    assert tokens[0] != tokens[1]
    for file in ("first", "second"):
        async with await Kube.connect(str(tmp_path / file), retry=ONCE) as own:
            await own.get(FleetNode, name)

    # a worker with other credentials (here the admin's) registered `taken` itself and reported who it is
    async with running_worker(kube, taken, namespace):
        code, out, err = await foreman_cli(cluster, "node", "join", taken, "-o", str(tmp_path / "taken"))
        assert code == 2
        assert out == ""
        assert err.startswith(f"error: FleetNode {taken} exists and its worker uses the other identity")
        assert len(err.strip().splitlines()) == 1
        assert not await identity_exists(kube, taken)
        assert not (tmp_path / "taken").exists()
    await foreman_cli(cluster, "node", "leave", name, "--force")


async def test_bad_names_and_kubeconfigs_that_skip_tls_verification_are_refused_creating_nothing(
    cluster: Cluster, kube: Kube, tmp_path: Path
) -> None:
    for bad in ("GPU_01", "gpu-", "a" * 60):
        code, _, err = await foreman_cli(cluster, "node", "join", bad, "-o", str(tmp_path / "k"))
        assert code == 2
        assert "is not a DNS label" in err
        assert len(err.strip().splitlines()) == 1
    insecure = yaml.safe_load(cluster.kubeconfig().read_text())
    cluster_entry = insecure["clusters"][0]["cluster"]
    cluster_entry.pop("certificate-authority-data", None)
    cluster_entry["insecure-skip-tls-verify"] = True
    (tmp_path / "insecure").write_text(yaml.safe_dump(insecure))
    name = fresh("insecure")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "node", "join", name, "--kubeconfig", str(tmp_path / "insecure"),
        "-o", str(tmp_path / "k"), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_bytes = await process.communicate()
    assert process.returncode == 2
    assert "skips TLS verification" in err_bytes.decode()
    assert not await identity_exists(kube, name)
    code, _, err = await foreman_cli(cluster, "node", "join", fresh("short"), "--duration", "5m")
    assert code == 2
    assert "under 10m" in err


async def exists(kube: Kube, api_version: str, kind: str, name: str) -> bool:
    try:
        await kube.get_raw(api_version, kind, name)
    except NotFound:
        return False
    return True


async def test_rotate_then_leave_drains_the_node_and_revokes_every_token(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    name = fresh("leaving")
    first, rotated = tmp_path / "first", tmp_path / "rotated"
    await joined(cluster, name, first, "-l", f"only={name}")
    bindings = [f"{WORKER}-{name}", f"{WORKER}-{name}-agent-schedules"]
    made = [b for b in bindings if await exists(kube, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", b)]
    assert made[:1] == bindings[:1]  # NB: the agent-schedules one only where the server has admission policies
    code, out, err = await foreman_cli(cluster, "node", "rotate", name, "-o", str(rotated), "--duration", "2h")
    assert (code, err) == (0, "")
    assert f"wrote {rotated}" in out
    async with await Kube.connect(str(rotated), retry=ONCE) as own:
        config = WorkerConfig(node_name=name, namespaces=[namespace], drain_grace=0.5, heartbeat_interval=0.2)
        running = RunningWorker(own, config)
        await running.started()
        async with running_controller(kube, namespace):
            await make_task(
                kube,
                namespace,
                "long",
                payload={"sleepSeconds": 3600},
                requiredCapability={"nodeSelector": {"only": name}},
            )
            await wait_for(kube, namespace, "long", phase_is("Running"))
            code, out, err = await foreman_cli(cluster, "node", "leave", name, "--timeout", "60")
            assert (code, err) == (0, ""), err
        await asyncio.wait_for(running._runner, 10)  # the worker drained and exited on its own
        assert all(f"ClusterRoleBinding/{binding}," in out for binding in made)  # every binding join made
        assert not [b for b in made if await exists(kube, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", b)]
        assert f"FleetNode/{name}" in out
        handed_back = await kube.get_raw("foreman.dev/v1alpha1", "AgenticTask", "long", namespace)
        assert handed_back["status"]["phase"] == "Pending"
        assert handed_back["status"].get("attempts", 0) == 0  # a drain's hand-back counts no attempt
        assert not await identity_exists(kube, name)
        for path in (first, rotated):
            async with await Kube.connect(str(path), retry=ONCE) as revoked:
                # NB: 403 until the apiserver's ServiceAccount informer sees the deletion (ms), 401 after
                with pytest.raises((Unauthorized, Forbidden)):
                    await revoked.get(FleetNode, name)
    code, _, err = await foreman_cli(cluster, "node", "rotate", name, "-o", str(tmp_path / "again"))
    assert code == 2
    assert f"run `foreman node join {name}` first" in err
    code, _, err = await foreman_cli(cluster, "node", "leave", name)
    assert code == 2
    assert f"no node {name}" in err


async def test_leave_waits_for_a_node_that_still_works_and_deletes_nothing_when_it_will_not_drain(
    cluster: Cluster, kube: Kube, tmp_path: Path
) -> None:
    name = fresh("stuck")
    await joined(cluster, name, tmp_path / "k")
    await heartbeat(kube, name)  # a worker that heartbeats but never drains (an old release)
    code, _, err = await foreman_cli(cluster, "node", "leave", name, "--timeout", "0.5")
    assert code == 2
    assert f"node {name} is still Ready after 0.5 s" in err
    assert await identity_exists(kube, name)
    assert (await kube.get(FleetNode, name)).spec.drain
    code, out, _ = await foreman_cli(cluster, "node", "leave", name, "--force")
    assert code == 0
    assert f"ServiceAccount/foreman-worker-{name}" in out


def chart_worker_admission(namespace: str) -> list[Manifest]:
    """The worker's admission policies as the chart renders them for its `namespace` value (install's text with the
    namespace replaced: test_chart proves the two the same), under names of their own so that the suite's
    foreman-system policies stay in force beside them."""
    rendered: list[Manifest] = list(
        yaml.safe_load_all(yaml.safe_dump_all(worker_admission()).replace(NAMESPACE, namespace))
    )
    for manifest in rendered:
        manifest["metadata"]["name"] += f"-{namespace}"
        if manifest["kind"] == "ValidatingAdmissionPolicyBinding":
            manifest["spec"]["policyName"] += f"-{namespace}"
    return rendered


async def test_a_node_joins_a_chart_installed_in_another_namespace_and_its_policy_holds_it_to_its_own_node(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        pytest.skip("ValidatingAdmissionPolicy needs Kubernetes >= 1.30")
    name, other = fresh("elsewhere"), fresh("bystander")
    path = tmp_path / "k"
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CHART_NAMESPACE}})
    policies = chart_worker_admission(CHART_NAMESPACE)
    for manifest in policies:
        await kube.apply(manifest)
    try:
        out = await joined(cluster, name, path, "--foreman-namespace", CHART_NAMESPACE)
        assert f"foreman node rotate {name} --foreman-namespace {CHART_NAMESPACE}" in out
        assert await identity_exists(kube, name, CHART_NAMESPACE)
        assert not await identity_exists(kube, name)
        await make_task(kube, namespace, "theirs")
        await kube.patch_status(
            AgenticTask, "theirs", {"phase": "Scheduled", "assignedNode": other}, namespace=namespace
        )
        async with await Kube.connect(str(path), retry=ONCE) as own:
            assert own.bearer_token is not None
            claims = token_claims(own.bearer_token)
            assert claims is not None
            assert claims["sub"] == f"system:serviceaccount:{CHART_NAMESPACE}:foreman-worker-{name}"
            # the apiserver loads a new policy within a moment: until then the identity could claim the task
            refusal = ""
            async with asyncio.timeout(15):
                while not refusal:
                    try:
                        await own.patch_status(AgenticTask, "theirs", {"claimedBy": name}, namespace=namespace)
                    except Forbidden as refused:
                        refusal = str(refused)
                    else:
                        await asyncio.sleep(0.2)
            assert f"on its own node ({name})" in refusal
            async with running_worker(own, name, namespace):
                node = await kube.get(FleetNode, name)
                assert node.status.phase == "Ready"
                assert node.status.identity is not None
                assert node.status.identity.kind == "per-node"
                monkeypatch.setenv("FOREMAN_NAMESPACE", CHART_NAMESPACE)
                code, listing, err = await foreman_cli(cluster, "node", "list")
                assert code == 0, err
                row = next(line.split() for line in listing.splitlines() if line.startswith(name))
                assert row[1:3] == ["Ready", "per-node"]
        code, out, err = await foreman_cli(cluster, "node", "leave", name, "--force")
        assert code == 0, err
        assert f"ServiceAccount/foreman-worker-{name}" in out
        assert not await identity_exists(kube, name, CHART_NAMESPACE)
    finally:
        for manifest in reversed(policies):
            with contextlib.suppress(NotFound):
                await kube.delete_raw(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"], None)


async def test_the_fleetnode_says_where_its_identity_lives_and_leave_rotate_and_list_follow_it(
    cluster: Cluster, kube: Kube, tmp_path: Path
) -> None:
    name, old = fresh("recorded"), fresh("old")
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CHART_NAMESPACE}})
    await joined(cluster, name, tmp_path / "k", "--foreman-namespace", CHART_NAMESPACE)
    annotations = (await kube.get(FleetNode, name)).metadata.annotations
    assert annotations[nodes.IDENTITY_ANNOTATION] == f"foreman-worker-{name}"
    assert annotations[nodes.IDENTITY_NAMESPACE_ANNOTATION] == CHART_NAMESPACE
    code, listing, err = await foreman_cli(cluster, "node", "list")
    assert code == 0, err
    assert f"{name}'s identity is in namespace {CHART_NAMESPACE}, not {NAMESPACE}" in err
    assert f"foreman node rotate {name} --foreman-namespace {CHART_NAMESPACE}` renews it" in err
    assert name in listing
    code, _, err = await foreman_cli(cluster, "node", "rotate", name, "-o", str(tmp_path / "r"))
    assert code == 2
    assert f"run `foreman node rotate {name} --foreman-namespace {CHART_NAMESPACE}`" in err
    assert not (tmp_path / "r").exists()

    # joined by a release before the namespace annotation: its identity is read as foreman-system's
    await joined(cluster, old, tmp_path / "o")
    await kube.patch(FleetNode, old, {"metadata": {"annotations": {nodes.IDENTITY_NAMESPACE_ANNOTATION: None}}})
    code, _, err = await foreman_cli(cluster, "node", "list", "--foreman-namespace", CHART_NAMESPACE)
    assert code == 0, err
    assert f"{old}'s identity is in namespace {NAMESPACE}, not {CHART_NAMESPACE}" in err
    assert f"{name}'s identity" not in err
    code, out, err = await foreman_cli(cluster, "node", "join", old, "--foreman-namespace", CHART_NAMESPACE)
    assert code == 2
    assert (
        f"join made its identity in namespace {NAMESPACE}: stop that worker and run `foreman node leave {old}`" in err
    )
    assert not await identity_exists(kube, old, CHART_NAMESPACE)
    code, out, err = await foreman_cli(cluster, "node", "join", old, "-o", str(tmp_path / "o"), "--duration", "1h")
    assert code == 0, err  # joined again where it was: free, as before
    assert (await kube.get(FleetNode, old)).metadata.annotations[nodes.IDENTITY_NAMESPACE_ANNOTATION] == NAMESPACE

    # leave without the flag takes the identity out where the FleetNode says it is
    for node in (name, old):
        code, out, err = await foreman_cli(cluster, "node", "leave", node, "--force")
        assert code == 0, err
        assert f"ServiceAccount/foreman-worker-{node}" in out
    assert not await identity_exists(kube, name, CHART_NAMESPACE)
    assert not await identity_exists(kube, old)
