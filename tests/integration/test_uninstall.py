"""`foreman uninstall` on a cluster of its own (the suite's cluster stays installed for every other test)."""

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from foreman.api.http.errors import NotFound
from foreman.api.http.kube import Kube
from foreman.api.models.resources import FleetNode
from foreman.api.tooling import nodes
from foreman.api.tooling.install import install, uninstall
from foreman.api.tooling.localcluster.cluster import LocalCluster
from foreman.api.tooling.manifests import NAMESPACE


@pytest.fixture
async def own_kube(tmp_path: Path) -> AsyncIterator[Kube]:
    release = os.environ.get("FOREMAN_TEST_KUBERNETES") or None
    cluster = await asyncio.to_thread(LocalCluster.start, tmp_path / "own", kubernetes=release)
    try:
        async with await Kube.connect(str(cluster.kubeconfig())) as kube:
            yield kube
    finally:
        await asyncio.to_thread(cluster.stop)


async def exists(kube: Kube, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
    try:
        await kube.get_raw(api_version, kind, name, namespace)
    except NotFound:
        return False
    return True


async def test_uninstall_takes_out_what_install_and_join_made_and_the_crds_only_when_purged(
    own_kube: Kube, tmp_path: Path
) -> None:
    kube = own_kube
    applied = await install(kube, with_workloads=True, with_dashboard=True)
    await nodes.join(kube, "gpu-01", lifetime=timedelta(hours=1), kubeconfig_path=str(tmp_path / "k"))
    deleted = await uninstall(kube)
    assert "ClusterRole/foreman-worker-gpu-01" in deleted
    assert "ClusterRoleBinding/foreman-worker-gpu-01" in deleted
    assert "ServiceAccount/foreman-worker-gpu-01" in deleted
    assert "Deployment/foreman-controller" in deleted
    for manifest in applied:
        meta = manifest["metadata"]
        there = await exists(kube, manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace"))
        if manifest["kind"] == "CustomResourceDefinition":
            assert there, meta["name"]
        elif manifest["kind"] == "Namespace":
            # NB: no namespace controller runs here to finish the deletion: it stays Terminating
            raw = await kube.get_raw("v1", "Namespace", NAMESPACE)
            assert raw["metadata"].get("deletionTimestamp")
        elif meta.get("namespace") != NAMESPACE:
            assert not there, f"{manifest['kind']}/{meta['name']}"
    assert (await kube.get(FleetNode, "gpu-01")).name == "gpu-01"  # kept with the CRDs: the fleet's own data

    purged = await uninstall(kube, purge=True)
    assert "CustomResourceDefinition/agentictasks.foreman.dev" in purged
    assert not any(name.startswith("ClusterRole/") for name in purged)  # gone already: skipped
