"""The admission policy that limits a worker to the tasks and the FleetNode of its own node (Kubernetes >= 1.30), proven
with the tokens a worker really presents: a per-node identity's, and a DaemonSet pod's (bound to the pod, naming its
Node); on older servers the policy is not installed and the hole is still there."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from foreman.api.http import requests
from foreman.api.http.client import Kube
from foreman.api.http.errors import Forbidden
from foreman.api.http.features import VALIDATING_ADMISSION_POLICY, for_server
from foreman.api.http.requests import Request
from foreman.api.models import transcript
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import NODE_LABEL, AgenticTask
from foreman.api.tooling.localcluster import Identity
from foreman.api.tooling.manifests import NAMESPACE, WORKER, pinned_worker_rbac
from tests.clusters import Cluster
from tests.integration.helpers import delete_nodes, make_node, make_task
from tests.tokens import kubeconfig_with_token, service_account_token

NODE = "pinned"  # the node of Identity.PINNED_WORKER's ServiceAccount, foreman-worker-pinned


async def _placed(kube: Kube, namespace: str, name: str, **status: Any) -> AgenticTask:
    await make_task(kube, namespace, name)
    return await kube.patch_status(AgenticTask, name, status, namespace=namespace)


@pytest.fixture
async def pinned(cluster: Cluster, kube: Kube) -> Any:
    # NB: its ServiceAccount and roles only: the FleetNode it would pre-create is not needed here
    for manifest in for_server(pinned_worker_rbac(NODE), await kube.server_version()):
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
    await _own_node_only(pinned, kube, namespace, NODE)


async def test_a_daemonset_pods_token_changes_only_the_tasks_of_its_pods_node(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The shared DaemonSet identity, as a pod presents it: a token bound to the pod names the pod's Node, and the
    DaemonSet names its FleetNode after that Node (so it registers and changes that FleetNode only). No kubelet is
    needed: a Pod object with spec.nodeName set is what
    the apiserver binds the token to."""
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        pytest.skip("ValidatingAdmissionPolicy needs Kubernetes >= 1.30")
    node = f"node-{namespace}"
    await kube._send(
        Request("POST", "/api/v1/nodes", body={"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    )
    pod = await kube._send(
        Request(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/pods",
            body={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"worker-{namespace}", "namespace": NAMESPACE},
                "spec": {
                    "nodeName": node,
                    "serviceAccountName": WORKER,
                    "containers": [{"name": "worker", "image": "ghcr.io/foreman-dev/foreman:0.1.0"}],
                },
            },
        )
    )
    try:
        token = await service_account_token(kube, NAMESPACE, WORKER, pod=pod)
        async with await Kube.connect(str(kubeconfig_with_token(cluster.kubeconfig(), token, tmp_path / "pod"))) as ds:
            await _own_node_only(ds, kube, namespace, node)
            # its FleetNode, named after its Node, as the registrar makes it; no other
            await ds.create(FleetNode.model_validate({"metadata": {"name": node}}))
            await ds.patch_status(FleetNode, node, {"phase": "Ready"})
            await make_node(kube, f"other-{namespace}")
            with pytest.raises(Forbidden, match=f"only its own FleetNode \\({node}\\)"):
                await ds.create(FleetNode.model_validate({"metadata": {"name": f"forged-{namespace}"}}))
            with pytest.raises(Forbidden, match="only its own FleetNode"):
                await ds.patch_status(FleetNode, f"other-{namespace}", {"phase": "Draining"})
            with pytest.raises(Forbidden, match="only its own FleetNode"):
                await ds.patch(FleetNode, f"other-{namespace}", {"metadata": {"labels": {"pool": "forged"}}})
    finally:
        await delete_nodes(kube, node, f"other-{namespace}")
        # NB: no kubelet confirms a graceful deletion here, so the Pod goes at once
        await kube._send(Request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}",
                                 body={"gracePeriodSeconds": 0}))  # fmt: skip
        await kube._send(Request("DELETE", f"/api/v1/nodes/{node}"))


async def _own_node_only(worker: Kube, kube: Kube, namespace: str, node: str) -> None:
    """`worker`, an identity of `node`, claims and finishes that node's task and nothing else."""
    await _until_enforced(worker, kube, namespace)
    await _placed(kube, namespace, "mine", phase="Scheduled", assignedNode=node)
    await _placed(kube, namespace, "theirs", phase="Scheduled", assignedNode="other")
    await _placed(kube, namespace, "theirs-running", phase="Running", assignedNode="other", claimedBy="other")
    await make_task(kube, namespace, "unplaced")  # Pending, on no node

    # its own: claim, then finish
    await worker.patch_status(AgenticTask, "mine", {"phase": "Running", "claimedBy": node}, namespace=namespace)
    # ... but never hand it to another node
    with pytest.raises(Forbidden, match="may not move a task to another node"):
        await worker.patch_status(AgenticTask, "mine", {"assignedNode": "other"}, namespace=namespace)
    await worker.patch_status(AgenticTask, "mine", {"phase": "Succeeded", "verdict": "GO"}, namespace=namespace)
    with pytest.raises(Forbidden, match="Scheduled or Running on its own node"):
        await worker.patch_status(AgenticTask, "mine", {"verdict": "NO-GO"}, namespace=namespace)  # finished
    # another node's: no claim, no finish, no fail
    forbidden: list[tuple[str, dict[str, Any]]] = [
        ("theirs", {"phase": "Running", "claimedBy": node}),
        ("theirs-running", {"phase": "Succeeded", "verdict": "GO"}),
        ("theirs-running", {"phase": "Failed", "failureReason": "ExecutorError"}),
        ("unplaced", {"phase": "Running", "assignedNode": node, "claimedBy": node}),  # claim only what was placed
    ]
    for name, status in forbidden:
        with pytest.raises(Forbidden, match=f"only of tasks Scheduled or Running on its own node \\({node}\\)"):
            await worker.patch_status(AgenticTask, name, status, namespace=namespace)
        assert (await kube.get(AgenticTask, name, namespace)).status.claimed_by != node
    await _own_objects_only(worker, kube, namespace, node)


async def _own_objects_only(worker: Kube, kube: Kube, namespace: str, node: str) -> None:
    """Beside tasks and nodes, `worker` writes only its own tasks' transcripts and Events about tasks and its own
    FleetNode: not kube-system/aws-auth, not another node's transcript, not a Warning about the apiserver's pod."""
    mine = await kube.get(AgenticTask, "mine", namespace)
    theirs = await kube.get(AgenticTask, "theirs-running", namespace)
    await worker.apply(transcript.configmap(mine, '{"event": "task"}'))
    await worker.apply(transcript.configmap(mine, '{"event": "task"}', attempt=2))  # each attempt has its own
    second = transcript.configmap(mine, "x", attempt=2)
    misnamed = [
        {**second, "metadata": {**second["metadata"], "name": f"mine-transcript-{tail}"}} for tail in ("2x", "0")
    ]
    forged = transcript.configmap(theirs, '{"event": "end", "verdict": "NO-GO"}')
    await kube.apply(transcript.configmap(theirs, '{"event": "task"}'))  # the other node's transcript, as it wrote it
    aws_auth = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": "- rolearn: arn:aws:iam::1:role/x\n  groups: [system:masters]\n"},
    }  # fmt: skip
    disguised = {**transcript.configmap(mine, "x"), "data": {"mapRoles": "x"}}
    disguised["metadata"] = {**disguised["metadata"], "namespace": "kube-system", "name": "aws-auth"}
    for body in (aws_auth, {**forged, "metadata": {**forged["metadata"], "labels": {NODE_LABEL: node}}}, disguised,
                 *misnamed):  # fmt: skip
        with pytest.raises(Forbidden, match="only the transcript ConfigMaps of its own node"):
            await worker.apply(body)
    stored = await kube.get_raw("v1", "ConfigMap", transcript.configmap_name("theirs-running"), namespace)
    assert "NO-GO" not in str(stored["data"])
    await worker.emit_event(mine, reason="Completed", message="ok", component="test")
    pod = {"apiVersion": "v1", "kind": "Pod", "name": "kube-apiserver", "namespace": "kube-system"}
    with pytest.raises(Forbidden, match="Events only about tasks and its own FleetNode"):
        await worker._send(requests.create_object({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "apiserver.x", "namespace": "kube-system"},
            "involvedObject": pod,
            "reason": "Unhealthy", "message": "compromised", "type": "Warning",
        }))  # fmt: skip


async def test_the_shared_worker_identity_and_older_servers_keep_the_open_status(
    cluster: Cluster, kube: Kube, pinned: Kube, namespace: str
) -> None:
    """What the README says a compromised worker can still do: a shared-identity token bound to no Pod names no node
    (the policy cannot tell which node it is; the static token here is one), and a server without
    ValidatingAdmissionPolicy has no policy at all."""
    await _placed(kube, namespace, "theirs", phase="Scheduled", assignedNode="other")
    async with await Kube.connect(str(cluster.kubeconfig(Identity.WORKER))) as shared:
        await shared.patch_status(AgenticTask, "theirs", {"claimedBy": "shared"}, namespace=namespace)
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        await pinned.patch_status(AgenticTask, "theirs", {"claimedBy": NODE}, namespace=namespace)
        assert (await kube.get(AgenticTask, "theirs", namespace)).status.claimed_by == NODE
