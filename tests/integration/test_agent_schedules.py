"""Schedules an agent makes (`set_schedule`), with the worker's own token: the tool refuses what is out of bounds and
writes nothing; what the token writes past the tool, the apiserver's policy refuses by its shape, and the controller
by its counts (Accepted=False, never fired); `foreman schedule sync --prune` leaves agent-made schedules alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from foreman.api.http.client import Kube
from foreman.api.http.errors import Forbidden
from foreman.api.http.features import VALIDATING_ADMISSION_POLICY
from foreman.api.lifecycle import agent_schedules
from foreman.api.models.agents import Agent
from foreman.api.models.base import find_condition
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.localcluster import Identity
from foreman.api.tooling.manifests import pinned_worker_rbac
from foreman.api.tooling.scripted_llm import Call, ScriptedLLM, Turn
from foreman.controller.loop import Controller
from foreman.worker.agent.errors import ToolError
from foreman.worker.agent.schedules import ScheduleTool
from foreman.worker.children import KubeFleet
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.metrics import WorkerMetrics
from tests.clock import Clock
from tests.clusters import Cluster
from tests.integration.helpers import (
    delete_nodes,
    foreman_cli,
    make_node,
    make_task,
    phase_is,
    running_controller,
    running_worker,
    until,
    wait_for,
)

NODE = "pinned"  # Identity.PINNED_WORKER's node


@pytest.fixture
async def worker(cluster: Cluster, kube: Kube) -> AsyncIterator[Kube]:
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        pytest.skip("a worker makes TaskSchedules only where ValidatingAdmissionPolicy bounds it (>= 1.30)")
    for manifest in pinned_worker_rbac(NODE):
        if manifest["kind"] != "FleetNode":
            await kube.apply(manifest)
    await make_node(kube, NODE)  # NB: the controller would requeue a Running task of a node it does not know
    try:
        async with await Kube.connect(str(cluster.kubeconfig(Identity.PINNED_WORKER))) as client:
            yield client
    finally:
        await delete_nodes(kube, NODE)


async def running_task(kube: Kube, namespace: str, name: str, node: str = NODE) -> AgenticTask:
    await make_task(kube, namespace, name, executor="agent", agentRef="coder")
    return await kube.patch_status(AgenticTask, name, {"phase": "Running", "assignedNode": node}, namespace=namespace)


async def agents(kube: Kube, namespace: str) -> Agent:
    for name, spec in (("coder", {"subtasks": {"agents": ["tester"], "maxSchedules": 2}}), ("tester", {})):
        await kube.create(Agent.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec}))
    return await kube.get(Agent, "coder", namespace)


def schedule_of(kube: Kube, namespace: str, name: str) -> Any:
    return lambda: kube.get(TaskSchedule, name, namespace)


def accepted(kube: Kube, namespace: str, name: str) -> Any:
    async def fetch() -> Any:
        condition = find_condition((await kube.get(TaskSchedule, name, namespace)).status.conditions, "Accepted")
        return None if condition is None else (condition.status, condition.reason, condition.message)

    return fetch


async def enforced(kube: Kube, worker: Kube, body: dict[str, Any]) -> None:
    """The apiserver loads a new policy within a moment: wait until a schedule of the wrong shape is refused."""
    async with asyncio.timeout(20):
        while True:
            try:
                made = await worker.create(TaskSchedule.model_validate(body))
            except Forbidden:
                return
            await kube.delete(TaskSchedule, made.name, made.namespace)
            await asyncio.sleep(0.2)


async def test_set_schedule_within_bounds_and_refused_past_them(
    kube: Kube, worker: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    coder = await agents(kube, namespace)
    task = await running_task(kube, namespace, "fixer")
    clock = Clock()
    metrics = WorkerMetrics()
    tool = ScheduleTool(KubeFleet(worker, task, lambda: clock.now), task, NODE, coder.spec, metrics)
    people = {"metadata": {"name": "peoples", "namespace": namespace},
              "spec": {"schedule": "@daily", "taskTemplate": {"spec": {"kind": "review"}}}}  # fmt: skip
    await enforced(kube, worker, people)

    async with running_controller(kube, namespace, clock=lambda: clock.now, schedule_check_every=0.05) as controller:
        said = await tool.call({"name": "flaky-nightly", "schedule": "0 3 * * *", "timeZone": "Europe/Berlin",
                                "agent": "tester", "prompt": "re-run tests/test_flaky.py"})  # fmt: skip
        assert said.startswith("taskschedule/flaky-nightly created: '0 3 * * *' in Europe/Berlin, Agent tester")
        assert await until(accepted(kube, namespace, "flaky-nightly"), lambda c: c is not None) == (
            "True", "ScheduleAccepted", ""
        )  # fmt: skip
        made = await kube.get(TaskSchedule, "flaky-nightly", namespace)
        assert made.spec.source == "agent"
        assert made.spec.created_by is not None
        assert (made.spec.created_by.task, made.spec.created_by.uid) == ("fixer", task.metadata.uid)
        # the same task changes it; the task finishing later does not stop it
        said = await tool.call({"name": "flaky-nightly", "schedule": "0 4 * * *", "agent": "tester", "prompt": "again"})
        assert "updated" in said
        await until(accepted(kube, namespace, "flaky-nightly"), lambda c: c == ("True", "ScheduleAccepted", ""))

        refusals = {
            "* * * * *": "ScheduleLimitExceeded: '* * * * *' fires 60 s apart",
            "0 0 30 2 *": "ImpossibleSchedule",
            "61 * * * *": "InvalidSchedule: minute field '61' is out of range 0-59",
        }
        for expression, says in refusals.items():
            with pytest.raises(ToolError, match=says.replace("*", r"\*")):
                await tool.call({"name": "busy", "schedule": expression, "agent": "tester", "prompt": "p"})
        with pytest.raises(ToolError, match="InvalidTimeZone"):
            await tool.call({"name": "busy", "schedule": "@daily", "timeZone": "Mars/Olympus", "agent": "tester",
                             "prompt": "p"})  # fmt: skip
        with pytest.raises(ToolError, match="agent 'admin' is not allowed"):
            await tool.call({"name": "busy", "schedule": "@daily", "agent": "admin", "prompt": "p"})
        await kube.create(TaskSchedule.model_validate(people))
        with pytest.raises(ToolError, match="exists and this task did not make it"):
            await tool.call({"name": "peoples", "schedule": "@daily", "agent": "tester", "prompt": "p"})
        await tool.call({"name": "second", "schedule": "@weekly", "agent": "tester", "prompt": "p"})
        with pytest.raises(ToolError, match="has made 2 schedules, the most its Agent coder allows"):
            await tool.call({"name": "third", "schedule": "@weekly", "agent": "tester", "prompt": "p"})
        names = {s.name for s in (await kube.list(TaskSchedule, namespace=namespace)).items}
        assert names == {"flaky-nightly", "second", "peoples"}
        trigger = {"metadata": {"annotations": {"foreman.dev/trigger": "again-and-again"}}}
        with pytest.raises(Forbidden, match="may not fire a TaskSchedule by hand"):
            await worker.patch(TaskSchedule, "second", trigger, namespace=namespace)
        refused = metrics.agent_set_schedule.labels("refused", "ScheduleLimitExceeded")._value.get()
        assert refused == 3  # every minute, the Agent not allowed, the third

        # what the token writes past the tool: refused by its shape (the apiserver), or its counts (the controller)
        await _past_the_tool(kube, worker, namespace, task, controller, clock, cluster)

    # people's sync never deletes or rewrites what an agent made, and the list says whose each one is
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "kept.yaml").write_text(
        "kind: TaskSchedule\napiVersion: foreman.dev/v1alpha1\nmetadata: {name: kept}\n"
        "spec: {schedule: '@daily', taskTemplate: {spec: {kind: review}}}\n"
    )
    code, out, err = await foreman_cli(cluster, "schedule", "sync", "-f", str(folder), "--prune", "-n", namespace)
    assert code == 0, err
    assert out.splitlines() == ["taskschedule/kept created", "taskschedule/peoples pruned"]
    assert (await kube.get(TaskSchedule, "flaky-nightly", namespace)).spec.schedule == "0 4 * * *"
    code, out, _ = await foreman_cli(cluster, "schedule", "list", "-n", namespace)
    sources = {line.split()[0]: line.split()[-2] for line in out.splitlines()[1:]}
    assert sources["flaky-nightly"] == sources["second"] == "agent"


async def _past_the_tool(
    kube: Kube, worker: Kube, namespace: str, task: AgenticTask, controller: Controller, clock: Clock, cluster: Cluster
) -> None:
    made = agent_schedules.made_by(task, NODE, name="direct", schedule="0 5 * * *", time_zone="UTC", agent="tester",
                                   prompt="p").to_wire()  # fmt: skip

    def varied(**changes: Any) -> TaskSchedule:
        body: dict[str, Any] = {**made, "metadata": {**made["metadata"]}, "spec": {**made["spec"]}}
        for path, value in changes.items():
            where, _, key = path.partition("__")
            body[where] = {**body[where], key: value}
        return TaskSchedule.model_validate(body)

    async with await Kube.connect(str(cluster.kubeconfig(Identity.WORKER))) as shared:  # a token bound to no Pod
        with pytest.raises(Forbidden, match="a worker token that names no node"):
            await shared.create(TaskSchedule.model_validate(made))
    template = made["spec"]["taskTemplate"]
    forbidden = {
        "a schedule of people's (no source agent)": (varied(spec__source="declarative"), "only agent-made"),
        "a forged parent label": (varied(metadata__labels={**made["metadata"]["labels"], "foreman.dev/parent": "x"}),
                                  "labelled"),
        "made on another node": (varied(spec__createdBy={**made["spec"]["createdBy"], "node": "gpu-box"}),
                                 "on the node of the worker that writes it"),
        "a task sending its result away": (
            varied(spec__taskTemplate={**template, "spec": {**template["spec"], "notify": [{"log": {}}]}}),
            "agent tasks",
        ),
    }  # fmt: skip
    for why, (body, says) in forbidden.items():
        with pytest.raises(Forbidden, match=says):
            await worker.create(body)
        assert not any(s.name == "direct" for s in (await kube.list(TaskSchedule, namespace=namespace)).items), why

    # admitted by shape, refused by the controller: every minute, a parent of another uid, one in another namespace
    other = f"{namespace}-other"
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    await agents(kube, other)
    await running_task(kube, other, "fixer")  # the same name there: another task, another uid
    cases = {
        ("every-minute", namespace): (varied(metadata__name="every-minute", spec__schedule="* * * * *"),
                                      "ScheduleLimitExceeded", "fires 60 s apart"),
        ("forged-uid", namespace): (varied(metadata__name="forged-uid",
                                           spec__createdBy={**made["spec"]["createdBy"], "uid": "forged"}),
                                    "InvalidParent", "with uid forged"),
        ("elsewhere", other): (varied(metadata__name="elsewhere", metadata__namespace=other),
                               "InvalidParent", f"no task fixer in namespace {other} with uid {task.metadata.uid}"),
    }  # fmt: skip
    for body, _, _ in cases.values():
        await worker.create(body)
    async with running_controller(kube, other, schedule_check_every=0.05):
        for (name, where), (_, reason, says) in cases.items():
            status, found, message = await until(accepted(kube, where, name), lambda c: c is not None)
            assert (status, found) == ("False", reason), message
            assert says in message
    # and it never fires: an hour passes on the controller's clock, and no task of it is made
    clock.now += timedelta(hours=1)
    controller.schedules.wake()
    await until(schedule_of(kube, namespace, "second"), lambda s: s.status.next_schedule_time is not None)
    schedule = await kube.get(TaskSchedule, "every-minute", namespace)
    assert (schedule.status.next_schedule_time, schedule.status.run_history) == (None, [])
    fired = await kube.list(AgenticTask, namespace=namespace, label_selector="foreman.dev/schedule=every-minute")
    assert fired.items == []
    counted = controller.metrics.agent_schedules
    assert (counted.labels("ScheduleAccepted")._value.get(), counted.labels("ScheduleLimitExceeded")._value.get()) == (
        3,
        1,
    )  # fmt: skip  (flaky-nightly twice: created, then changed; second; every-minute)


async def test_a_model_sets_a_schedule_through_the_agent_executor(kube: Kube, namespace: str, tmp_path: Path) -> None:
    """The tool as a model meets it: offered, called, its refusal read back; the schedule names the worker's node."""
    node = f"sched-{namespace}"

    def asked(name: str, schedule: str) -> Turn:
        return Turn(
            calls=[Call("set_schedule", {"name": name, "schedule": schedule, "agent": "tester", "prompt": "p"})]
        )

    script = [
        asked("nightly", "@daily"),
        asked("often", "*/5 * * * *"),
        Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": "scheduled"})]),
    ]
    await agents(kube, namespace)
    async with (
        ScriptedLLM(script) as llm,
        running_controller(kube, namespace, schedule_check_every=0.05),
        running_worker(kube, node, namespace, {"agent": AgentExecutor},
                       executors={"agent": {"endpoint": llm.base_url, "workspaceRoot": str(tmp_path)}}),
    ):  # fmt: skip
        await make_task(kube, namespace, "planner", executor="agent", agentRef="coder", payload={"prompt": "Go."})
        task = await wait_for(kube, namespace, "planner", phase_is("Succeeded"), timeout=30)
        await until(accepted(kube, namespace, "nightly"), lambda c: c == ("True", "ScheduleAccepted", ""))
    offered = [tool["function"]["name"] for tool in llm.requests[0]["tools"]]
    assert "set_schedule" in offered
    told = [m["content"] for m in llm.requests[2]["messages"] if m["role"] == "tool"]
    assert told[0].startswith("taskschedule/nightly created")
    assert told[1].startswith("error: ScheduleLimitExceeded: '*/5 * * * *' fires 300 s apart")
    made = await kube.get(TaskSchedule, "nightly", namespace)
    assert made.spec.created_by is not None
    assert (made.spec.created_by.node, made.spec.created_by.uid) == (node, task.metadata.uid)
    assert [s.name for s in (await kube.list(TaskSchedule, namespace=namespace)).items] == ["nightly"]
