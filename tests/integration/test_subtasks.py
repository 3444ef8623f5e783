"""Sub-tasks end to end (issue 34, part 5): the real apiserver, controller and worker (its sandbox, its own per-node
token, so the admission policies hold what it creates) and a scripted model. The shipped example
(examples/agent-planner.yaml: planner and fixer Agents, a task) is applied as written but for the task's repo: the
planner splits a two-file fix into two children, waits for them, and reports GO when both passed; its status and
envelope list them, `foreman describe` shows them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from foreman.api.http.client import Kube
from foreman.api.http.features import VALIDATING_ADMISSION_POLICY, for_server
from foreman.api.models.subtasks import CREATED_BY_LABEL, PARENT_LABEL
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.localcluster import Identity
from foreman.api.tooling.manifests import pinned_worker_rbac
from foreman.api.tooling.scripted_llm import SPLIT_FILES, Call, ScriptedLLM, Turn, demo_repository, split_script
from foreman.worker.executors.agent import AgentExecutor
from tests.clusters import Cluster
from tests.integration.helpers import (
    delete_nodes,
    foreman_cli,
    make_task,
    running_controller,
    running_worker,
    wait_for,
)
from tests.integration.test_admission import NODE
from tests.integration.test_agent import agent_settings, finished, make_agent

EXAMPLE = Path(__file__).parents[2] / "examples" / "agent-planner.yaml"
EXAMPLE_TASK = "fix-the-tests"


def example(namespace: str, repository: Path) -> list[dict[str, Any]]:
    """The example's objects in the test's namespace, its task on the test's repository (what a user edits)."""
    manifests = list(yaml.safe_load_all(EXAMPLE.read_text()))
    for manifest in manifests:
        manifest["metadata"]["namespace"] = namespace
        if manifest["kind"] == "AgenticTask":
            manifest["spec"]["payload"]["repo"] = str(repository)
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "AgenticTask"] == [EXAMPLE_TASK]
    return manifests


async def test_a_planner_splits_a_fix_into_children_waits_and_reports_go(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        pytest.skip("sub-tasks need the admission policy (Kubernetes >= 1.30): older servers' workers create no tasks")
    repository = demo_repository(tmp_path / "origin", SPLIT_FILES)
    for manifest in for_server(
        pinned_worker_rbac(NODE), await kube.server_version()
    ):  # its ServiceAccount, roles and FleetNode
        await kube.apply(manifest)
    async with ScriptedLLM(split_script) as llm, await Kube.connect(str(cluster.kubeconfig(Identity.PINNED_WORKER))) \
            as own:  # fmt: skip
        executors = agent_settings(llm, tmp_path, allowCommands=[["python3", "-m", "unittest"]],
                                   allowRepos=[str(repository)])  # fmt: skip
        async with (
            running_controller(kube, namespace),
            running_worker(own, NODE, namespace, {"agent": AgentExecutor}, executors=executors,
                           max_concurrent_tasks=3) as worker,
        ):  # fmt: skip
            for manifest in example(namespace, repository):
                await kube.apply(manifest)
            parent = await wait_for(kube, namespace, EXAMPLE_TASK, finished, timeout=90)
            code, described, _ = await foreman_cli(cluster, "describe", "task", EXAMPLE_TASK, "-n", namespace)
    assert (parent.phase, parent.status.verdict) == ("Succeeded", "GO"), parent.status
    children = [f"{EXAMPLE_TASK}-1", f"{EXAMPLE_TASK}-2"]
    assert parent.status.children == children
    assert parent.status.result is not None
    assert [(c.name, c.phase, c.verdict) for c in parent.status.result.children] == [
        (name, "Succeeded", "GO") for name in children
    ]
    for name in children:
        child = await kube.get(AgenticTask, name, namespace)
        assert child.metadata.labels[PARENT_LABEL] == EXAMPLE_TASK
        assert child.metadata.labels[CREATED_BY_LABEL] == "agent"
        assert child.metadata.owner_references[0].uid == parent.metadata.uid
        assert child.status.result is not None
    assert code == 0
    assert "Children:" in described
    assert children[0] in described
    assert worker.metrics.registry.get_sample_value("foreman_agent_subtasks_total", {"outcome": "created"}) == 2
    await delete_nodes(kube, NODE)


async def test_bad_submissions_are_tool_errors_the_model_reads_and_the_parent_goes_on(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """An Agent not allowed, a payload over the cap, a dependsOn that would start a cycle, 1,000 calls in one answer:
    each a tool error in the next request, no task created beyond maxChildren, the parent ends with its own verdict.
    NB: 300 KB, not 10 MB, of payload here: a model that writes 10 MB into a tool call has its history outgrow any
    context (ContextExceeded: its own doing); the tool refuses 10 MB the same way (tests/unit/worker/agent)."""
    flood = [Call("submit_task", {"agent": "fixer", "prompt": f"part {i}"}) for i in range(1000)]
    turns = [
        Turn(calls=[Call("submit_task", {"agent": "ghost", "prompt": "p"})]),
        Turn(
            calls=[Call("submit_task", {"agent": "fixer", "prompt": "p", "payload": {"blob": "x" * 300_000}})],
            piece=1 << 20,
        ),
        Turn(calls=[Call("submit_task", {"agent": "fixer", "prompt": "p", "dependsOn": ["flood-2"]})]),
        Turn(calls=flood, piece=1 << 20),
        Turn(calls=[Call("submit_result", {"verdict": "NO-GO", "summary": "nothing to split"})]),
    ]
    async with (
        ScriptedLLM(turns, context_tokens=1_000_000) as llm, running_controller(kube, namespace),
        running_worker(kube, "flood-box", namespace, {"agent": AgentExecutor},
                       executors=agent_settings(llm, tmp_path)),
    ):  # fmt: skip
        await make_agent(kube, namespace, "planner", subtasks={"agents": ["fixer"], "maxChildren": 3})
        await make_agent(kube, namespace, "fixer")
        await make_task(kube, namespace, "flood", executor="agent", agentRef="planner",
                        payload={"prompt": "Split the work."})  # fmt: skip
        parent = await wait_for(kube, namespace, "flood", finished, timeout=90)
        children = await kube.list(AgenticTask, namespace=namespace, label_selector=f"{PARENT_LABEL}=flood")
    assert (parent.phase, parent.status.verdict) == ("Succeeded", "NO-GO"), (
        parent.status.result.summary if parent.status.result else None
    )
    told = [[m["content"] for m in request["messages"] if m["role"] == "tool"] for request in llm.requests]
    assert told[1][-1].startswith("error: agent must be one of fixer; got 'ghost'")
    assert "at most 262144" in told[2][-1]
    assert "dependsOn may name only this task's children created before" in told[3][-1]
    results = told[4][-1000:]
    assert sum(not result.startswith("error:") for result in results) == 3
    assert sum("maxChildren 3" in result for result in results) == 997
    assert sorted(task.name for task in children.items) == ["flood-1", "flood-2", "flood-3"]
    assert parent.status.children == ["flood-1", "flood-2", "flood-3"]
