"""The limits on an agent's children, held with the worker's own token (issue 34, part 3): admission refuses what the
object shows (labels, ownerReference, node, executor, a change other than cancel); the controller fails what needs
the parent, its Agent or a count (ParentNotRunning, SubtaskNotAllowed, SubtaskLimitExceeded)."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from foreman.api.http.client import Kube
from foreman.api.http.errors import Forbidden
from foreman.api.http.features import VALIDATING_ADMISSION_POLICY
from foreman.api.lifecycle import reasons, subtasks
from foreman.api.models.agents import Agent
from foreman.api.models.base import wire_time
from foreman.api.models.subtasks import CREATOR_NODE_LABEL, DEPTH_LABEL, PARENT_LABEL
from foreman.api.models.tasks import AgenticTask
from foreman.controller.config import ControllerConfig
from foreman.controller.loop import Controller
from tests.integration.helpers import RunningController, condition, delete_nodes, make_node, make_task, wait_for
from tests.integration.test_admission import NODE, _placed, _until_enforced, pinned

__all__ = ["pinned"]  # the fixture, imported to be used here


async def _agent(kube: Kube, namespace: str, name: str, **subtask_policy: Any) -> None:
    spec = {"subtasks": subtask_policy} if subtask_policy else {}
    await kube.create(Agent.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec}))


def _child(
    parent: AgenticTask,
    index: int,
    *,
    agent: str = "fixer",
    node: str = NODE,
    labels: dict[str, str] | None = None,
    **changes: Any,
) -> AgenticTask:
    """A child as the worker makes it, with `labels` and top-level `changes` (metadata fields, spec fields) over it."""
    wire = subtasks.child_task(parent, name=subtasks.child_name(parent.name, index), agent=agent, prompt="fix it",
                               inputs={}, depends_on=[], node=node).to_wire()  # fmt: skip
    wire["metadata"]["labels"].update(labels or {})
    for field, value in changes.items():
        wire["metadata" if field in ("name", "namespace") else "spec"][field] = value
    return AgenticTask.model_validate(wire)


def _failed_with(reason: str) -> Any:
    return lambda task: task.phase == "Failed" and task.status.failure_reason == reason


async def test_a_worker_creates_only_children_of_its_own_running_tasks_within_their_agents_limits(
    kube: Kube, pinned: Kube, namespace: str
) -> None:
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        pytest.skip("ValidatingAdmissionPolicy needs Kubernetes >= 1.30")
    await _until_enforced(pinned, kube, namespace)
    other = f"t-{uuid.uuid4().hex[:10]}"
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    await _agent(kube, namespace, "planner", agents=["fixer", "planner"], maxChildren=2, maxDepth=2)
    await _agent(kube, namespace, "fixer")
    await _agent(kube, namespace, "stranger")
    parent = await _placed(kube, namespace, "parent", phase="Running", assignedNode=NODE, claimedBy=NODE)
    await kube.patch(AgenticTask, "parent", {"spec": {"agentRef": "planner", "executor": "agent"}}, namespace=namespace)
    theirs = await _placed(kube, namespace, "theirs", phase="Running", assignedNode="other", claimedBy="other")
    await kube.patch(AgenticTask, "theirs", {"spec": {"agentRef": "planner", "executor": "agent"}}, namespace=namespace)

    # admission: what the object itself shows
    refused = {
        "no labels": AgenticTask.model_validate({"metadata": {"name": "plain", "namespace": namespace},
                                                 "spec": {"executor": "agent", "agentRef": "fixer"}}),
        "a forged parent label": _child(parent, 9, labels={PARENT_LABEL: "theirs"}),
        "another node": _child(parent, 9, node="other"),
        "a depth that is no number": _child(parent, 9, labels={DEPTH_LABEL: "x"}),
        "a model of its own": _child(parent, 9, modelRef="huge-model"),
        "a reviewer of its own": _child(parent, 9, review={"agentRef": "stranger"}),
        "a payload field beyond prompt and inputs": _child(parent, 9, payload={"prompt": "p", "script": "x"}),
    }  # fmt: skip
    for body in refused.values():
        with pytest.raises(Forbidden, match="may create only child tasks of an agent"):
            await pinned.create(body)
    with pytest.raises(Forbidden, match="may create only child tasks"):
        await pinned.create(_child(parent, 9, executor="command"))

    # the controller: what needs the parent, its Agent and the counts
    first = await pinned.create(_child(parent, 1))
    await pinned.create(_child(parent, 2, agent="stranger"))  # not in the planner's subtasks.agents
    await pinned.create(_child(parent, 3))  # the third of maxChildren 2 (the refused one counts)
    forged = _child(theirs, 1)  # parent label and ownerReference agree, but that parent runs on another node
    await pinned.create(forged)
    await pinned.create(_child(parent, 4, namespace=other))  # the parent's name and uid, in another namespace
    # a grandchild of depth 3 below maxDepth 2: its parent (made here as a depth-2 child) is Running on this node
    await kube.create(_child(parent, 5, agent="planner", labels={DEPTH_LABEL: "2"}, name="deep"))
    deep = await kube.patch_status(AgenticTask, "deep", {"phase": "Running", "assignedNode": NODE}, namespace=namespace)
    await pinned.create(_child(deep, 1))

    config = ControllerConfig(namespaces=(namespace, other), lease_namespace=namespace, leader_election=False,
                              stale_after=timedelta(seconds=60))  # fmt: skip
    for node in (NODE, "other"):  # live, so the controller leaves their tasks where they are
        await make_node(kube, node)
    running = RunningController(Controller(kube, config))
    metrics = (await running.started()).metrics
    try:
        await wait_for(kube, namespace, "parent-2", _failed_with(reasons.SUBTASK_NOT_ALLOWED))
        await wait_for(kube, namespace, "parent-3", _failed_with(reasons.SUBTASK_LIMIT_EXCEEDED))
        await wait_for(kube, namespace, "theirs-1", _failed_with(reasons.PARENT_NOT_RUNNING))
        await wait_for(kube, other, "parent-4", _failed_with(reasons.PARENT_NOT_RUNNING))
        too_deep = await wait_for(kube, namespace, "deep-1", _failed_with(reasons.SUBTASK_LIMIT_EXCEEDED))
        assert "maxDepth 2" in (too_deep.status.result.summary if too_deep.status.result else "")
        kept = await kube.get(AgenticTask, first.name, namespace)
        assert kept.phase == "Pending", "the one child within the limits waits for a node"
        assert (await kube.get(AgenticTask, "parent", namespace)).phase == "Running", "the parent is unharmed"
        refusals = metrics.registry.get_sample_value
        assert refusals("foreman_subtasks_refused_total", {"reason": reasons.SUBTASK_LIMIT_EXCEEDED}) == 2

        # cancel: only spec.cancel, only of a child its own node made
        with pytest.raises(Forbidden, match=r"only spec\.cancel of the child tasks its own node made"):
            await pinned.patch(AgenticTask, first.name, {"spec": {"priority": 100}}, namespace=namespace)
        with pytest.raises(Forbidden, match=r"only spec\.cancel"):
            await pinned.patch(AgenticTask, "theirs", {"spec": {"cancel": True}}, namespace=namespace)
        with pytest.raises(Forbidden, match=r"only spec\.cancel"):
            await pinned.patch(AgenticTask, first.name, {"metadata": {"labels": {CREATOR_NODE_LABEL: "x"}}},
                               namespace=namespace)  # fmt: skip
        await pinned.patch(AgenticTask, first.name, {"spec": {"cancel": True}}, namespace=namespace)
        await wait_for(kube, namespace, first.name, _failed_with(reasons.CANCELLED))
    finally:
        await running.stop()
        await delete_nodes(kube, NODE, "other")


async def test_the_worker_that_runs_a_tasks_review_makes_no_child_of_it(
    kube: Kube, pinned: Kube, namespace: str
) -> None:
    """A hostile reviewer holds the task: it may write its status, but not its review stage, where the work's attempts
    are (on another node); so a child it makes of the task is refused, and its honest writes still pass."""
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        pytest.skip("ValidatingAdmissionPolicy needs Kubernetes >= 1.30")
    await _until_enforced(pinned, kube, namespace)
    await _agent(kube, namespace, "planner", agents=["fixer"])
    await _agent(kube, namespace, "fixer")
    now = datetime.now(UTC).replace(microsecond=0)
    work = {"number": 1, "node": "other", "startedAt": wire_time(now - timedelta(minutes=10)),
            "finishedAt": wire_time(now - timedelta(minutes=1))}  # fmt: skip
    review = {"number": 2, "node": NODE, "startedAt": wire_time(now - timedelta(seconds=30))}
    stage = {"agentRef": "reviewer", "workAttempts": [work]}
    parent = await _placed(kube, namespace, "parent", phase="Running", assignedNode=NODE, claimedBy=NODE,
                           attemptHistory=[work, review], review=stage)  # fmt: skip
    await kube.patch(AgenticTask, "parent", {"spec": {"agentRef": "planner", "executor": "agent"}}, namespace=namespace)

    mine = {**work, "node": NODE}
    for forged in ({"review": {**stage, "workAttempts": [mine]}}, {"review": None}):
        with pytest.raises(Forbidden, match=r"may not change a task's review stage \(status\.review\)"):
            await pinned.patch_status(AgenticTask, "parent", forged, namespace=namespace)
    # its history it may rewrite (it holds the task), to no avail: the stage says where the work ran
    await pinned.patch_status(AgenticTask, "parent", {"attemptHistory": [mine, review]}, namespace=namespace)
    child = await pinned.create(_child(parent, 1))

    config = ControllerConfig(namespaces=(namespace,), lease_namespace=namespace, leader_election=False,
                              stale_after=timedelta(seconds=60))  # fmt: skip
    for node in (NODE, "other"):
        await make_node(kube, node)
    running = RunningController(Controller(kube, config))
    await running.started()
    try:
        await wait_for(kube, namespace, child.name, _failed_with(reasons.PARENT_NOT_RUNNING))
    finally:
        await running.stop()
        await delete_nodes(kube, NODE, "other")
    ended = {**review, "finishedAt": wire_time(now), "outcome": reasons.COMPLETED}
    await pinned.patch_status(AgenticTask, "parent", {"phase": "Succeeded", "verdict": "GO",
                              "attemptHistory": [mine, ended]}, namespace=namespace)  # fmt: skip
    assert (await kube.get(AgenticTask, "parent", namespace)).status.review == parent.status.review


async def test_without_the_policy_a_worker_creates_no_task(kube: Kube, pinned: Kube, namespace: str) -> None:
    """On a server older than 1.30 the worker's role has no create or patch of tasks (features.for_server)."""
    if await kube.server_version() >= VALIDATING_ADMISSION_POLICY:
        pytest.skip("the policy is there (tested above)")
    parent = await _placed(kube, namespace, "parent", phase="Running", assignedNode=NODE, claimedBy=NODE)
    with pytest.raises(Forbidden):
        await pinned.create(_child(parent, 1))
    with pytest.raises(Forbidden):
        await pinned.patch(AgenticTask, "parent", {"spec": {"cancel": True}}, namespace=namespace)


async def test_cancelling_a_parent_cancels_its_children(kube: Kube, namespace: str) -> None:
    await _agent(kube, namespace, "planner", agents=["fixer"])
    await _agent(kube, namespace, "fixer")
    parent = await make_task(kube, namespace, "parent", executor="agent", agentRef="planner")
    parent = await kube.patch_status(AgenticTask, "parent", {"phase": "Running", "assignedNode": NODE},
                                     namespace=namespace)  # fmt: skip
    waiting = await kube.create(_child(parent, 1))
    held = await kube.create(_child(parent, 2))
    await kube.patch_status(AgenticTask, held.name, {"phase": "Running", "assignedNode": NODE}, namespace=namespace)
    config = ControllerConfig(namespaces=(namespace,), lease_namespace=namespace, leader_election=False,
                              stale_after=timedelta(seconds=60))  # fmt: skip
    await make_node(kube, NODE)
    running = RunningController(Controller(kube, config))
    await running.started()
    try:
        await kube.patch(AgenticTask, "parent", {"spec": {"cancel": True}}, namespace=namespace)
        await wait_for(kube, namespace, waiting.name, _failed_with(reasons.CANCELLED))
        await wait_for(kube, namespace, held.name, lambda task: task.spec.cancel)  # its worker stops it
    finally:
        await running.stop()
        await delete_nodes(kube, NODE)


async def test_a_child_made_before_children_inherited_the_capability_is_placed_as_its_parent_must_be(
    kube: Kube, namespace: str
) -> None:
    """After an upgrade: a Pending child the older version wrote without requiredCapability takes its parent's (the
    controller's spec patch, through the apiserver), and waits for a node that fits it; one that asks a node for less
    confinement than its parent is refused."""
    await _agent(kube, namespace, "planner", agents=["fixer"])
    await _agent(kube, namespace, "fixer")
    confined = {"sandbox": True, "nodeSelector": {"pool": "safe"}}
    await make_task(kube, namespace, "parent", executor="agent", agentRef="planner", requiredCapability=confined)
    parent = await kube.patch_status(AgenticTask, "parent", {"phase": "Running", "assignedNode": NODE},
                                     namespace=namespace)  # fmt: skip
    old = await kube.create(_child(parent, 1, requiredCapability={}))
    weaker = await kube.create(_child(parent, 2, requiredCapability={"nodeSelector": {"pool": "safe"}}))
    config = ControllerConfig(namespaces=(namespace,), lease_namespace=namespace, leader_election=False,
                              stale_after=timedelta(seconds=60))  # fmt: skip
    await make_node(kube, NODE, labels={"pool": "safe"})  # unconfined: nothing of the parent's may run here
    running = RunningController(Controller(kube, config))
    await running.started()
    try:
        await wait_for(kube, namespace, weaker.name, _failed_with(reasons.SUBTASK_NOT_ALLOWED))
        held = await wait_for(kube, namespace, old.name, lambda task: condition(task, reasons.BLOCKED) is not None)
    finally:
        await running.stop()
        await delete_nodes(kube, NODE)
    assert held.spec.required_capability == parent.spec.required_capability
    assert (held.phase, condition(held, reasons.BLOCKED)) == ("Pending", ("True", reasons.NO_FITTING_NODE))
