"""Least privilege, proven against the real apiserver with the controller's and the worker's own tokens."""

import pytest

from foreman.api.http import requests
from foreman.api.http.client import Kube
from foreman.api.http.errors import Forbidden, NotFound
from foreman.api.models import transcript
from foreman.api.models.agents import Agent
from foreman.api.models.nodes import FleetNode
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import NODE_LABEL, AgenticTask
from foreman.api.tooling.localcluster import Identity
from foreman.controller.deletion import delete_finished
from tests.clusters import Cluster
from tests.integration.helpers import make_task


async def as_identity(cluster: Cluster, identity: Identity) -> Kube:
    return await Kube.connect(str(cluster.kubeconfig(identity)))


async def test_worker_role(cluster: Cluster, kube: Kube, namespace: str) -> None:
    task = await make_task(kube, namespace, "victim")
    async with await as_identity(cluster, Identity.WORKER) as worker:
        # what a worker needs
        assert (await worker.get(AgenticTask, "victim", namespace)).name == "victim"
        await worker.list(AgenticTask, label_selector=f"{NODE_LABEL}=x")
        await worker.patch_status(AgenticTask, "victim", {"attempts": 1}, namespace=namespace)
        node = await worker.create(FleetNode.model_validate({"metadata": {"name": f"rbac-{namespace}"}}))
        await worker.patch_status(FleetNode, node.name, {"phase": "Ready"})
        await worker.patch(FleetNode, node.name, {"metadata": {"labels": {"pool": "a"}}})
        # the agent executor: read the task's Agent, write its transcript ConfigMap (created by server-side apply)
        await kube.create(Agent.model_validate({"metadata": {"name": "helper", "namespace": namespace}}))
        assert (await worker.get(Agent, "helper", namespace)).name == "helper"
        transcript = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "victim-transcript",
                      "namespace": namespace}, "data": {"transcript.jsonl": "{}\n"}}  # fmt: skip
        await worker.apply(transcript)
        await worker.apply({**transcript, "data": {"transcript.jsonl": "{}\n{}\n"}})
        # what it must not do
        with pytest.raises(Forbidden):
            await worker.create(Agent.model_validate({"metadata": {"name": "forged", "namespace": namespace}}))
        with pytest.raises(Forbidden):
            await worker._send(requests.list_objects("v1", "ConfigMap", namespace))
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


async def test_controller_role(cluster: Cluster, kube: Kube, namespace: str) -> None:
    await make_task(kube, namespace, "placed")
    schedule = TaskSchedule.model_validate(
        {
            "metadata": {"name": "s", "namespace": namespace},
            "spec": {"schedule": "@daily", "taskTemplate": {"spec": {"kind": "review"}}},
        }
    )
    await kube.create(schedule)
    async with await as_identity(cluster, Identity.CONTROLLER) as controller:
        await controller.list(AgenticTask)
        await controller.list(FleetNode)
        await controller.list(Agent)  # whether a task's agentRef exists
        with pytest.raises(Forbidden):
            await controller.create(Agent.model_validate({"metadata": {"name": "forged", "namespace": namespace}}))
        await controller.patch_status(AgenticTask, "placed", {"attempts": 1}, namespace=namespace)
        await controller.patch(AgenticTask, "placed", {"metadata": {"labels": {NODE_LABEL: "n"}}}, namespace=namespace)
        # TaskSchedules: it reads them, keeps their status, and creates and deletes their tasks
        await controller.list(TaskSchedule, namespace=namespace)
        await controller.patch_status(TaskSchedule, "s", {"lastTrigger": "x"}, namespace=namespace)
        fired = AgenticTask.model_validate(
            {"metadata": {"name": "fired", "namespace": namespace}, "spec": {"kind": "verify"}}
        )
        await controller.create(fired)
        await controller.delete(AgenticTask, "fired", namespace)
        # finished tasks past their time to live, with the transcript each owns (read first: owned?), nothing else
        expired = await make_task(kube, namespace, "expired")
        await kube.apply(transcript.configmap(expired, "{}\n"))
        await kube.patch_status(AgenticTask, "expired", {"transcriptRef": "expired-transcript"}, namespace=namespace)
        await delete_finished(controller, await controller.get(AgenticTask, "expired", namespace))
        with pytest.raises(NotFound):
            await kube.get_raw("v1", "ConfigMap", "expired-transcript", namespace)
        with pytest.raises(Forbidden):
            await controller._send(requests.list_objects("v1", "ConfigMap", namespace))
        with pytest.raises(Forbidden):
            await controller.apply(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": namespace}}
            )
        with pytest.raises(Forbidden):
            await controller._send(requests.list_objects("v1", "Secret", namespace))
        with pytest.raises(Forbidden):
            await controller.patch(TaskSchedule, "s", {"spec": {"suspend": True}}, namespace=namespace)
        with pytest.raises(Forbidden):
            await controller.delete(TaskSchedule, "s", namespace)
        with pytest.raises(Forbidden):
            await controller.patch(FleetNode, "any", {"spec": {"maxConcurrentTasks": 9}})
        with pytest.raises(Forbidden):
            await controller.delete(FleetNode, "any")


async def test_pinned_worker_touches_only_its_own_fleetnode(cluster: Cluster, kube: Kube, namespace: str) -> None:
    """`foreman manifests --worker-node pinned`: its own ServiceAccount and FleetNode, nothing else of the fleet."""
    from foreman.api.tooling.manifests import pinned_worker_rbac
    from tests.integration.helpers import phase_is, running_controller, running_worker, wait_for

    for manifest in pinned_worker_rbac("pinned"):
        await kube.apply(manifest)
    neighbour = await kube.create(FleetNode.model_validate({"metadata": {"name": f"neighbour-{namespace}"}}))
    try:
        async with await as_identity(cluster, Identity.PINNED_WORKER) as pinned:
            await pinned.patch_status(FleetNode, "pinned", {"phase": "Ready"})
            with pytest.raises(Forbidden):
                await pinned.patch_status(FleetNode, neighbour.name, {"phase": "NotReady"})
            with pytest.raises(Forbidden):
                await pinned.patch(FleetNode, neighbour.name, {"metadata": {"labels": {"hijacked": "yes"}}})
            with pytest.raises(Forbidden):
                await pinned.create(FleetNode.model_validate({"metadata": {"name": f"forged-{namespace}"}}))
            with pytest.raises(Forbidden):
                await pinned.delete(FleetNode, "pinned")
            # and a real worker runs under it: it registers on the pre-created node and finishes a task
            async with running_controller(kube, namespace), running_worker(pinned, "pinned", namespace):
                await make_task(kube, namespace, "pinned-work")
                done = await wait_for(kube, namespace, "pinned-work", phase_is("Succeeded"), timeout=20)
            assert done.status.assigned_node == "pinned"
    finally:
        # NB: with the admin client: the pinned identity may not delete, and a stray Ready node would attract work
        for name in (neighbour.name, "pinned"):
            await kube.delete(FleetNode, name)
