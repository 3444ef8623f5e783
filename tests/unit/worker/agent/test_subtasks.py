"""The sub-task tools against a fleet held in memory (the TaskFleet protocol is ours; the apiserver side of it is
tested in tests/integration/test_subtasks_*.py): refusals are tool errors, and the parent's bookkeeping holds."""

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from foreman.api.http.errors import AlreadyExists, ServerError
from foreman.api.models.subtasks import SubtaskPolicy
from foreman.api.models.tasks import AgenticTask
from foreman.worker.agent.errors import ToolError
from foreman.worker.agent.subtasks import Subtasks, definitions, wait_seconds


class Fleet:
    def __init__(self) -> None:
        self.tasks: dict[str, AgenticTask] = {}
        self.recorded: list[str] = []
        self.cancelled: list[str] = []
        self.changed = asyncio.Event()
        self.foreign: set[str] = set()

    async def agent_exists(self, name: str) -> bool:
        return name != "gone"

    async def create(self, child: AgenticTask) -> AgenticTask:
        if child.name in self.foreign or child.name in self.tasks:
            raise AlreadyExists(f"agentictasks {child.name!r} already exists")
        self.tasks[child.name] = child
        return child

    async def children(self) -> dict[str, AgenticTask]:
        return dict(self.tasks)

    async def watch_children(self) -> AsyncGenerator[dict[str, AgenticTask]]:
        while True:
            yield dict(self.tasks)
            self.changed.clear()
            await self.changed.wait()

    async def cancel(self, name: str) -> None:
        self.cancelled.append(name)

    async def record(self, names: list[str]) -> None:
        self.recorded = list(names)

    def finish(self, name: str, verdict: str) -> None:
        done = {"phase": "Succeeded", "verdict": verdict,
                "result": {"kind": "freeform", "verdict": verdict, "summary": f"{name} done"}}  # fmt: skip
        self.tasks[name] = self.tasks[name].model_copy(update={"status": self.tasks[name].status.model_validate(done)})
        self.changed.set()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


PARENT = AgenticTask.model_validate({
    "metadata": {"name": "fix-all", "namespace": "ns", "uid": "u"},
    "spec": {"executor": "agent", "agentRef": "planner", "timeoutSeconds": 600},
    "status": {"phase": "Running", "assignedNode": "n1"},
})  # fmt: skip


def _tools(fleet: Fleet, clock: Clock, deadline: float = 600.0, **policy: Any) -> Subtasks:
    rules = SubtaskPolicy(agents=["fixer", "gone"], **policy)
    return Subtasks(PARENT, rules, fleet, "n1", deadline=deadline, clock=clock)


async def test_submit_then_wait_returns_each_childs_verdict_and_summary() -> None:
    fleet, clock = Fleet(), Clock()
    tools = _tools(fleet, clock)
    first = json.loads(await tools.call("submit_task", {"agent": "fixer", "prompt": "fix a.py"}))["name"]
    second = json.loads(await tools.call("submit_task", {"agent": "fixer", "prompt": "fix b.py",
                                                         "dependsOn": [first]}))["name"]  # fmt: skip
    assert (first, second) == ("fix-all-1", "fix-all-2")
    assert fleet.recorded == [first, second]
    assert fleet.tasks[second].spec.depends_on == [first]
    fleet.finish(first, "GO")
    fleet.finish(second, "NO-GO")
    waited = json.loads(await tools.call("wait_for_tasks", {"names": [first, second]}))
    assert [(t["name"], t["verdict"], t["summary"]) for t in waited["tasks"]] == [
        (first, "GO", f"{first} done"), (second, "NO-GO", f"{second} done")]  # fmt: skip
    assert [r.verdict for r in await tools.records()] == ["GO", "NO-GO"]


async def test_wait_returns_when_the_children_finish_and_is_bounded_by_its_timeout_and_the_parents() -> None:
    fleet, clock = Fleet(), Clock()
    tools = _tools(fleet, clock, deadline=0.5)  # 0.5 s left of the parent's timeout
    name = json.loads(await tools.call("submit_task", {"agent": "fixer", "prompt": "p"}))["name"]
    waiting = asyncio.create_task(tools.call("wait_for_tasks", {"names": [name], "timeout_seconds": 60}))
    await asyncio.sleep(0)  # NB: the waiter sees the child unfinished first
    fleet.finish(name, "GO")
    assert json.loads(await waiting)["tasks"][0]["verdict"] == "GO"

    other = json.loads(await tools.call("submit_task", {"agent": "fixer", "prompt": "q"}))["name"]
    started = time.monotonic()
    waited = json.loads(await tools.call("wait_for_tasks", {"names": [other], "timeout_seconds": 60}))
    assert waited["stillRunning"] == [other]
    assert time.monotonic() - started < 0.5, "never past the parent's own timeout (less a tenth for submitting)"
    waited = json.loads(await tools.call("wait_for_tasks", {"names": [other], "timeout_seconds": 0.01}))
    assert waited["tasks"][0]["phase"] == "Pending"


@pytest.mark.parametrize(
    ("requested", "left", "waited"),
    [(None, 600.0, 540.0), (0, 600.0, 0.0), (30, 600.0, 30.0), (10_000, 600.0, 540.0), (-5, 600.0, 0.0),
     (None, 100.0, 90.0), (None, -1.0, 0.0)],
)  # fmt: skip
def test_wait_takes_what_was_asked_within_the_parents_time_less_its_reserve(
    requested: float | None, left: float, waited: float
) -> None:
    assert wait_seconds(requested, left) == pytest.approx(waited)


async def test_a_wait_of_zero_seconds_answers_at_once() -> None:
    fleet, clock = Fleet(), Clock()
    tools = _tools(fleet, clock, deadline=3600.0)
    name = json.loads(await tools.call("submit_task", {"agent": "fixer", "prompt": "p"}))["name"]
    async with asyncio.timeout(5):
        waited = json.loads(await tools.call("wait_for_tasks", {"names": [name], "timeout_seconds": 0}))
    assert waited["stillRunning"] == [name]
    with pytest.raises(ToolError, match="timeout_seconds must be a number"):
        await tools.call("wait_for_tasks", {"names": [name], "timeout_seconds": True})


@pytest.mark.parametrize(
    ("tool", "arguments", "said"),
    [
        ("submit_task", {"agent": "gone", "prompt": "p"}, "does not exist in namespace ns"),
        ("submit_task", {"agent": "stranger", "prompt": "p"}, "agent must be one of"),
        ("submit_task", {"agent": "fixer", "prompt": "p", "dependsOn": ["fix-all-7"]}, "children created before"),
        ("submit_task", {"agent": "fixer", "prompt": "p", "payload": {"x": "y" * 10_485_760}}, "at most 262144"),
        ("wait_for_tasks", {"names": ["someone-else"]}, "not your sub-tasks"),
        ("wait_for_tasks", {"names": "fix-all-1"}, "names must be a non-empty list"),
        ("cancel_my_task", {"name": "someone-else"}, "not one of your sub-tasks"),
    ],
)
async def test_bad_calls_are_tool_errors_and_create_nothing(tool: str, arguments: dict[str, Any], said: str) -> None:
    fleet = Fleet()
    with pytest.raises(ToolError, match=said):
        await _tools(fleet, Clock()).call(tool, arguments)
    assert fleet.tasks == {}
    assert fleet.cancelled == []


async def test_a_thousand_submissions_in_one_turn_make_max_children() -> None:
    fleet = Fleet()
    tools = _tools(fleet, Clock(), max_children=3)
    errors: list[str] = []
    for index in range(1000):
        try:
            await tools.call("submit_task", {"agent": "fixer", "prompt": f"part {index}"})
        except ToolError as error:
            errors.append(str(error))
    assert len(fleet.tasks) == 3
    assert len(errors) == 997
    assert all("maxChildren 3" in error for error in errors)
    listed = json.loads(await tools.call("list_my_tasks", {}))
    assert [t["name"] for t in listed["tasks"]] == ["fix-all-1", "fix-all-2", "fix-all-3"]
    assert await tools.call("cancel_my_task", {"name": "fix-all-2"}) == "cancel requested for fix-all-2"
    assert fleet.cancelled == ["fix-all-2"]


async def test_a_name_another_task_holds_is_a_tool_error_and_the_next_try_takes_the_next_name() -> None:
    fleet = Fleet()
    fleet.foreign = {"fix-all-1"}  # a task someone else made holds the first child's name
    tools = _tools(fleet, Clock())
    with pytest.raises(ToolError, match="taken by a task that is not yours"):
        await tools.call("submit_task", {"agent": "fixer", "prompt": "p"})
    assert json.loads(await tools.call("submit_task", {"agent": "fixer", "prompt": "p"}))["name"] == "fix-all-2"
    assert tools.created == ["fix-all-2"]


async def test_a_child_an_earlier_attempt_made_counts_and_is_not_passed_off_as_the_new_one() -> None:
    """The earlier attempt's status list was lost, so the new attempt's first name is that child's: the model hears
    so (it did not make a child of this prompt), the child counts against maxChildren, and the next try makes one."""
    fleet = Fleet()
    earlier = _tools(fleet, Clock())
    await earlier.call("submit_task", {"agent": "fixer", "prompt": "fix a.py"})
    tools = _tools(fleet, Clock(), max_children=2)  # NB: PARENT's status lists no children
    with pytest.raises(ToolError, match="an earlier attempt of this task made"):
        await tools.call("submit_task", {"agent": "fixer", "prompt": "fix b.py"})
    assert tools.created == fleet.recorded == ["fix-all-1"]
    made = json.loads(await tools.call("submit_task", {"agent": "fixer", "prompt": "fix b.py"}))["name"]
    assert fleet.tasks[made].spec.payload.prompt == "fix b.py"
    with pytest.raises(ToolError, match="maxChildren 2"):
        await tools.call("submit_task", {"agent": "fixer", "prompt": "fix c.py"})


async def test_a_status_list_that_cannot_be_written_does_not_unmake_the_child() -> None:
    fleet = Fleet()

    async def refused(names: list[str]) -> None:
        raise ServerError("etcdserver: request timed out")

    fleet.record = refused  # type: ignore[method-assign]
    tools = _tools(fleet, Clock())
    assert json.loads(await tools.call("submit_task", {"agent": "fixer", "prompt": "p"}))["name"] == "fix-all-1"
    assert [r.name for r in await tools.records()] == ["fix-all-1"]


def test_the_tool_names_and_arguments_are_the_issues() -> None:
    tools = definitions(["fixer"])
    assert list(tools) == ["submit_task", "wait_for_tasks", "list_my_tasks", "cancel_my_task"]
    assert set(tools["submit_task"]["function"]["parameters"]["properties"]) == {"agent", "prompt", "payload",
                                                                                   "dependsOn"}  # fmt: skip
    assert set(tools["wait_for_tasks"]["function"]["parameters"]["properties"]) == {"names", "timeout_seconds"}
