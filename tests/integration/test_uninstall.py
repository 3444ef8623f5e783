"""`foreman uninstall` on a cluster of its own (the suite's cluster stays installed for every other test)."""

from datetime import timedelta
from pathlib import Path

from foreman.api.http.client import Kube
from foreman.api.models.nodes import FleetNode
from foreman.api.tooling import nodes
from foreman.api.tooling.install import install, uninstall
from tests.integration.helpers import only_crds_left


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
