"""Sub-tasks end to end (issue 34, part 5): the real apiserver, controller and worker (its sandbox, its own per-node
token, so the admission policies hold what it creates) and a scripted model. A planner splits a two-file fix into two
children, waits for them, and reports GO when both passed; its status and envelope list them, `foreman describe`
shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from foreman.api.http.features import VALIDATING_ADMISSION_POLICY, for_server
from foreman.api.http.kube import Kube
from foreman.api.models.resources import AgenticTask
from foreman.api.models.subtasks import CREATED_BY_LABEL, PARENT_LABEL
from foreman.api.tooling.localcluster import Identity
from foreman.api.tooling.manifests import pinned_worker_rbac
from foreman.api.tooling.scripted_llm import SPLIT_FILES, ScriptedLLM, demo_repository, split_script
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
            await make_agent(kube, namespace, "planner", subtasks={"agents": ["fixer"], "maxChildren": 4})
            await make_agent(kube, namespace, "fixer", tools=["read_file", "edit_file", "run"])
            await make_task(kube, namespace, "fix-both", executor="agent", agentRef="planner",
                            payload={"prompt": "Fix the failing tests.", "repo": str(repository)})  # fmt: skip
            parent = await wait_for(kube, namespace, "fix-both", finished, timeout=90)
            code, described, _ = await foreman_cli(cluster, "describe", "task", "fix-both", "-n", namespace)
    assert (parent.phase, parent.status.verdict) == ("Succeeded", "GO"), parent.status
    children = ["fix-both-1", "fix-both-2"]
    assert parent.status.children == children
    assert parent.status.result is not None
    assert [(c.name, c.phase, c.verdict) for c in parent.status.result.children] == [
        (name, "Succeeded", "GO") for name in children
    ]
    for name in children:
        child = await kube.get(AgenticTask, name, namespace)
        assert child.metadata.labels[PARENT_LABEL] == "fix-both"
        assert child.metadata.labels[CREATED_BY_LABEL] == "agent"
        assert child.metadata.owner_references[0].uid == parent.metadata.uid
        assert child.status.result is not None
    assert code == 0
    assert "Children:" in described
    assert "fix-both-1" in described
    assert worker.metrics.registry.get_sample_value("foreman_agent_subtasks_total", {"outcome": "created"}) == 2
    await delete_nodes(kube, NODE)
