"""Least privilege, proven against the real apiserver with the controller's and the worker's own tokens."""

import pytest

from foreman.api import requests
from foreman.api.errors import Forbidden
from foreman.api.kube import Kube
from foreman.api.localcluster import Identity, LocalCluster
from foreman.api.resources import NODE_LABEL, AgenticTask, FleetNode
from tests.integration.helpers import make_task


async def as_identity(cluster: LocalCluster, identity: Identity) -> Kube:
    return await Kube.connect(str(cluster.kubeconfig(identity)))


async def test_worker_role(cluster: LocalCluster, kube: Kube, namespace: str) -> None:
    task = await make_task(kube, namespace, "victim")
    async with await as_identity(cluster, Identity.WORKER) as worker:
        # what a worker needs
        assert (await worker.get(AgenticTask, "victim", namespace)).name == "victim"
        await worker.list(AgenticTask, label_selector=f"{NODE_LABEL}=x")
        await worker.patch_status(AgenticTask, "victim", {"attempts": 1}, namespace=namespace)
        node = await worker.create(FleetNode.model_validate({"metadata": {"name": f"rbac-{namespace}"}}))
        await worker.patch_status(FleetNode, node.name, {"phase": "Ready"})
        await worker.patch(FleetNode, node.name, {"metadata": {"labels": {"pool": "a"}}})
        # what it must not do
        with pytest.raises(Forbidden):
            await worker.create(
                AgenticTask.model_validate(
                    {"metadata": {"name": "forged", "namespace": namespace}, "spec": {"kind": "verify"}}
                )
            )
        with pytest.raises(Forbidden):
            await worker.delete(AgenticTask, task.name, namespace)
        with pytest.raises(Forbidden):
            await worker.patch(AgenticTask, task.name, {"spec": {"executor": "command"}}, namespace=namespace)
        with pytest.raises(Forbidden):
            await worker.patch(
                AgenticTask, task.name, {"metadata": {"labels": {NODE_LABEL: "elsewhere"}}}, namespace=namespace
            )
        with pytest.raises(Forbidden):
            await worker._send(requests.list_objects("v1", "Secret", namespace))
        with pytest.raises(Forbidden):
            await worker.delete(FleetNode, node.name)
    await kube.delete(FleetNode, node.name)


async def test_controller_role(cluster: LocalCluster, kube: Kube, namespace: str) -> None:
    await make_task(kube, namespace, "placed")
    async with await as_identity(cluster, Identity.CONTROLLER) as controller:
        await controller.list(AgenticTask)
        await controller.list(FleetNode)
        await controller.patch_status(AgenticTask, "placed", {"attempts": 1}, namespace=namespace)
        await controller.patch(AgenticTask, "placed", {"metadata": {"labels": {NODE_LABEL: "n"}}}, namespace=namespace)
        with pytest.raises(Forbidden):
            await controller._send(requests.list_objects("v1", "Secret", namespace))
        with pytest.raises(Forbidden):
            await controller.delete(AgenticTask, "placed", namespace)
        with pytest.raises(Forbidden):
            await controller.create(
                AgenticTask.model_validate(
                    {"metadata": {"name": "x", "namespace": namespace}, "spec": {"kind": "verify"}}
                )
            )
