"""The admission policy that limits a per-node worker identity to the tasks of its own node (Kubernetes >= 1.30),
proven with that identity's own token; on older servers the policy is not installed and the hole is still there."""

import asyncio
from typing import Any

import pytest

from foreman.api.http.errors import Forbidden
from foreman.api.http.features import VALIDATING_ADMISSION_POLICY
from foreman.api.http.kube import Kube
from foreman.api.models.resources import AgenticTask
from foreman.api.tooling.localcluster import Identity, LocalCluster
from foreman.api.tooling.manifests import pinned_worker_rbac
from tests.integration.helpers import make_task

NODE = "pinned"  # the node of Identity.PINNED_WORKER's ServiceAccount, foreman-worker-pinned


async def _placed(kube: Kube, namespace: str, name: str, **status: Any) -> AgenticTask:
    await make_task(kube, namespace, name)
    return await kube.patch_status(AgenticTask, name, status, namespace=namespace)


@pytest.fixture
async def pinned(cluster: LocalCluster, kube: Kube) -> Any:
    # NB: its ServiceAccount and roles only: the FleetNode it would pre-create is not needed here
    for manifest in pinned_worker_rbac(NODE):
        if manifest["kind"] != "FleetNode":
            await kube.apply(manifest)
    async with await Kube.connect(str(cluster.kubeconfig(Identity.PINNED_WORKER))) as client:
        yield client


async def _until_enforced(pinned: Kube, kube: Kube, namespace: str) -> None:
    """The apiserver loads a new policy within a moment of its creation: wait on a canary task of another node."""
    await _placed(kube, namespace, "canary", phase="Scheduled", assignedNode="elsewhere")
    async with asyncio.timeout(20):
        while True:
            try:
                await pinned.patch_status(AgenticTask, "canary", {"claimedBy": "probe"}, namespace=namespace)
            except Forbidden:
                return
            await asyncio.sleep(0.2)


async def test_a_worker_changes_only_the_tasks_scheduled_or_running_on_its_own_node(
    kube: Kube, pinned: Kube, namespace: str
) -> None:
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        pytest.skip("ValidatingAdmissionPolicy needs Kubernetes >= 1.30 (the floor is tested below)")
    await _until_enforced(pinned, kube, namespace)
    await _placed(kube, namespace, "mine", phase="Scheduled", assignedNode=NODE)
    await _placed(kube, namespace, "theirs", phase="Scheduled", assignedNode="other")
    await _placed(kube, namespace, "theirs-running", phase="Running", assignedNode="other", claimedBy="other")
    await make_task(kube, namespace, "unplaced")  # Pending, on no node

    # its own: claim, then finish
    await pinned.patch_status(AgenticTask, "mine", {"phase": "Running", "claimedBy": NODE}, namespace=namespace)
    # ... but never hand it to another node
    with pytest.raises(Forbidden, match="may not move a task to another node"):
        await pinned.patch_status(AgenticTask, "mine", {"assignedNode": "other"}, namespace=namespace)
    await pinned.patch_status(AgenticTask, "mine", {"phase": "Succeeded", "verdict": "GO"}, namespace=namespace)
    with pytest.raises(Forbidden, match="Scheduled or Running on its own node"):
        await pinned.patch_status(AgenticTask, "mine", {"verdict": "NO-GO"}, namespace=namespace)  # finished
    # another node's: no claim, no finish, no fail
    forbidden: list[tuple[str, dict[str, Any]]] = [
        ("theirs", {"phase": "Running", "claimedBy": NODE}),
        ("theirs-running", {"phase": "Succeeded", "verdict": "GO"}),
        ("theirs-running", {"phase": "Failed", "failureReason": "ExecutorError"}),
        ("unplaced", {"phase": "Running", "assignedNode": NODE, "claimedBy": NODE}),  # claim only what was placed
    ]
    for name, status in forbidden:
        with pytest.raises(Forbidden, match=f"only of tasks Scheduled or Running on its own node \\({NODE}\\)"):
            await pinned.patch_status(AgenticTask, name, status, namespace=namespace)
        assert (await kube.get(AgenticTask, name, namespace)).status.claimed_by != NODE


async def test_the_shared_worker_identity_and_older_servers_keep_the_open_status(
    cluster: LocalCluster, kube: Kube, pinned: Kube, namespace: str
) -> None:
    """What the README says a compromised worker can still do: the shared DaemonSet identity is not a node's (the
    policy cannot tell its node), and a server without ValidatingAdmissionPolicy has no policy at all."""
    await _placed(kube, namespace, "theirs", phase="Scheduled", assignedNode="other")
    async with await Kube.connect(str(cluster.kubeconfig(Identity.WORKER))) as shared:
        await shared.patch_status(AgenticTask, "theirs", {"claimedBy": "shared"}, namespace=namespace)
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        await pinned.patch_status(AgenticTask, "theirs", {"claimedBy": NODE}, namespace=namespace)
        assert (await kube.get(AgenticTask, "theirs", namespace)).status.claimed_by == NODE
