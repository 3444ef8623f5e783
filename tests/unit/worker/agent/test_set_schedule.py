"""Where `set_schedule` is offered, and the arguments it refuses before it asks the cluster anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from foreman.api.models.agents import AgentSpec
from foreman.api.models.base import utcnow
from foreman.api.models.review import ReviewStage
from foreman.api.models.tasks import AgenticTask
from foreman.worker.agent import workspace
from foreman.worker.agent.errors import ToolError
from foreman.worker.agent.schedules import ScheduleTool
from foreman.worker.agent.tools import Toolbox
from foreman.worker.children import KubeFleet, may_create
from foreman.worker.executors.agent import schedule_tool
from foreman.worker.executors.base import ExecutionContext
from foreman.worker.metrics import WorkerMetrics
from tests.fakekube import FakeApiserver, kube_over

TASK = AgenticTask.model_validate(
    {"metadata": {"name": "fixer", "namespace": "team", "uid": "u-1"}, "spec": {"executor": "agent"}}
)


def fleet() -> KubeFleet:
    return KubeFleet(kube_over(FakeApiserver()), TASK, utcnow)


def agent(**subtasks: Any) -> AgentSpec:
    return AgentSpec.model_validate({"subtasks": subtasks} if subtasks else {})


@pytest.mark.parametrize(
    ("spec", "offered"),
    [(agent(), False), (agent(agents=["tester"]), False), (agent(maxSchedules=1), True)],
)
def test_offered_only_where_the_agent_allows_schedules(spec: AgentSpec, offered: bool, tmp_path: Path) -> None:
    context = ExecutionContext("gpu-box", 1, agent=spec, fleet=fleet())
    tool = schedule_tool(TASK, context)
    assert (tool is not None) == offered
    box = Toolbox(workspace.create(str(tmp_path), "t"), ("read_file", "submit_result"), schedules=tool)
    names = [definition["function"]["name"] for definition in box.definitions()]
    assert ("set_schedule" in names) == offered
    assert schedule_tool(TASK, ExecutionContext("gpu-box", 1, agent=spec)) is None  # no fleet lent: none


@pytest.mark.parametrize(
    ("spec", "lent"),
    [(agent(), False), (agent(maxSchedules=0), False), (agent(agents=["tester"]), True), (agent(maxSchedules=1), True)],
)
def test_a_fleet_is_lent_where_the_agent_may_create_children_or_schedules(spec: AgentSpec, lent: bool) -> None:
    assert may_create(TASK, spec) == lent


def test_a_reviewer_is_lent_no_fleet_whatever_its_agent_allows() -> None:
    """The controller judges children by the task's own Agent; the reviewer's attempt creates nothing."""
    reviewing = TASK.model_copy(update={"status": TASK.status.model_copy(update={
        "review": ReviewStage(agent_ref="reviewer")})})  # fmt: skip
    assert may_create(TASK, agent(agents=["tester"], maxSchedules=1))
    assert not may_create(reviewing, agent(agents=["tester"], maxSchedules=1))
    assert not may_create(TASK, None)


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"name": "Nightly", "schedule": "@daily", "agent": "t", "prompt": "p"}, "lower-case DNS label"),
        ({"name": "x" * 64, "schedule": "@daily", "agent": "t", "prompt": "p"}, "at most 63"),
        ({"name": "n", "schedule": "* * * * * *", "agent": "t", "prompt": "p"}, "InvalidSchedule: .* has 6 fields"),
        ({"name": "n", "schedule": "@daily", "agent": "t", "prompt": ""}, "prompt: between 1 and"),
        ({"name": "n", "schedule": "@daily", "agent": "t", "prompt": "p", "timeZone": 3}, "timeZone must be a string"),
        ({"name": "n", "schedule": "@daily", "agent": "t"}, "bad arguments for set_schedule: missing prompt"),
        ({"name": "n", "schedule": "@daily", "agent": "t", "prompt": "p", "every": 1}, "bad arguments.*unknown every"),
    ],
)
async def test_bad_arguments_are_errors_for_the_model(arguments: dict[str, Any], says: str, tmp_path: Path) -> None:
    metrics = WorkerMetrics()
    tool = ScheduleTool(fleet(), TASK, "gpu-box", agent(maxSchedules=1), metrics)
    box = Toolbox(workspace.create(str(tmp_path), "t"), ("submit_result",), schedules=tool)
    with pytest.raises(ToolError, match=says):
        await box.call("set_schedule", arguments)
    samples = metrics.agent_set_schedule.collect()[0].samples
    assert [s.labels["outcome"] for s in samples if s.name.endswith("_total")] == ["refused"]


async def test_a_fault_inside_the_tool_is_no_bad_argument_of_the_model() -> None:
    """A TypeError from within set_schedule is a bug: it ends the task (ExecutorError) and is seen, not blamed on
    the model's arguments."""

    class Broken(KubeFleet):
        async def schedule(self, name: str) -> Any:
            raise TypeError("a bug")

    tool = ScheduleTool(Broken(kube_over(FakeApiserver()), TASK, utcnow), TASK, "gpu-box", agent(maxSchedules=1))
    with pytest.raises(TypeError, match="a bug"):
        await tool.call({"name": "n", "schedule": "@daily", "agent": "t", "prompt": "p"})
