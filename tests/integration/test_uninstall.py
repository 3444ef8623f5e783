"""`foreman uninstall` on a cluster of its own (the suite's cluster stays installed for every other test)."""

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from foreman.api.http.client import Kube
from foreman.api.models.nodes import FleetNode
from foreman.api.tooling import nodes
from foreman.api.tooling.install import install, uninstall
from foreman.api.tooling.localcluster.cluster import LocalCluster
from foreman.api.tooling.manifests import NAMESPACE, pinned_worker_rbac
from tests.integration.helpers import exists, only_crds_left

CHART_NAMESPACE = "fleet-ops"


async def test_uninstall_takes_out_what_install_and_join_made_and_the_crds_only_when_purged(
    own_kube: Kube, tmp_path: Path
) -> None:
    kube = own_kube
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    applied = await install(
        kube, with_workloads=True, with_dashboard=True, notify_namespaces=("team",), transcript_namespaces=("team",)
    )
    await nodes.join(kube, "gpu-01", lifetime=timedelta(hours=1), kubeconfig_path=str(tmp_path / "k"))
    deleted = await uninstall(kube)
    assert "ClusterRole/foreman-worker-gpu-01" in deleted
    assert "ClusterRoleBinding/foreman-worker-gpu-01" in deleted
    assert "ServiceAccount/foreman-worker-gpu-01" in deleted
    assert "Deployment/foreman-controller" in deleted
    await only_crds_left(kube, applied)
    assert (await kube.get(FleetNode, "gpu-01")).name == "gpu-01"  # kept with the CRDs: the fleet's own data

    purged = await uninstall(kube, purge=True)
    assert "CustomResourceDefinition/agentictasks.foreman.dev" in purged
    assert not any(name.startswith("ClusterRole/") for name in purged)  # gone already: skipped


async def left(kube: Kube, node: str, namespace: str) -> list[str]:
    """What is left of what join made for `node`'s identity in `namespace` (its FleetNode aside)."""
    return [
        f"{m['kind']}/{m['metadata']['name']}"
        for m in pinned_worker_rbac(node, namespace)
        if m["kind"] != "FleetNode"
        and await exists(kube, m["apiVersion"], m["kind"], m["metadata"]["name"], m["metadata"].get("namespace"))
    ]


async def test_uninstall_finds_joined_identities_wherever_they_are_and_in_the_namespace_given(
    own_cluster: LocalCluster, own_kube: Kube, tmp_path: Path
) -> None:
    kube = own_kube
    await install(kube)
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CHART_NAMESPACE}})
    hour = timedelta(hours=1)
    for node, namespace in (("there", CHART_NAMESPACE), ("old", NAMESPACE), ("unrecorded", CHART_NAMESPACE)):
        await nodes.join(kube, node, lifetime=hour, kubeconfig_path=str(tmp_path / node), namespace=namespace)
        assert await left(kube, node, namespace), node
    # joined by a release before the namespace annotation
    await kube.patch(FleetNode, "old", {"metadata": {"annotations": {nodes.IDENTITY_NAMESPACE_ANNOTATION: None}}})
    # a node whose bindings and FleetNode are gone (deleted by hand): only its ServiceAccount and role say it was
    gone = [
        m for m in pinned_worker_rbac("unrecorded", CHART_NAMESPACE) if m["kind"] in ("ClusterRoleBinding", "FleetNode")
    ]
    assert await nodes.delete_each(kube, map(nodes.address, gone))  # NB: agent-schedules' binding: only from 1.30

    deleted = await uninstall(kube)
    assert "ServiceAccount/foreman-worker-there" in deleted
    assert await left(kube, "there", CHART_NAMESPACE) == []  # found by its bindings' subject and its FleetNode
    assert await left(kube, "old", NAMESPACE) == []
    assert await left(kube, "unrecorded", CHART_NAMESPACE) == [
        "ServiceAccount/foreman-worker-unrecorded",
        "ClusterRole/foreman-worker-unrecorded",
    ]  # nothing says where it is

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "uninstall", "--kubeconfig", str(own_cluster.kubeconfig()),
        "--foreman-namespace", CHART_NAMESPACE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "deleted ServiceAccount/foreman-worker-unrecorded" in out.decode()
    assert await left(kube, "unrecorded", CHART_NAMESPACE) == []
    assert [node.name for node in (await kube.list(FleetNode)).items] == ["old", "there"]  # the fleet's data stays
