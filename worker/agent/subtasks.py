"""The sub-task tools: `submit_task`, `wait_for_tasks`, `list_my_tasks`, `cancel_my_task`, offered to an agent whose
Agent lists `spec.subtasks.agents`.

Names and arguments are an API that prompts are written against: keep them. Each refusal is a ToolError the model
reads; the parent task goes on. What the tools refuse is what the controller would refuse later
(api/lifecycle/subtasks.py), so an honest model hears it at once; a dishonest worker still meets admission and the
controller (README, "Security").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from foreman.api.http.errors import AlreadyExists, ApiError
from foreman.api.lifecycle import subtasks
from foreman.api.models.envelope import ChildRecord
from foreman.api.models.subtasks import SubtaskPolicy
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.worker.agent.errors import ToolError
from foreman.worker.agent.tools import _function
from foreman.worker.children import Children
from foreman.worker.metrics import WorkerMetrics

log = structlog.get_logger("foreman.worker.agent")
TOOLS = ("submit_task", "wait_for_tasks", "list_my_tasks", "cancel_my_task")
RESERVE = 0.1
"""Share of the parent's timeout wait_for_tasks never takes (at most a minute): time to submit a result."""
SUMMARY_SHOWN = 2000
"""Characters of each child's summary wait_for_tasks returns."""


_NAMES = {"type": "array", "items": {"type": "string"}}


def definitions(agents: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {
        "submit_task": _function(
            "submit_task",
            "Create a sub-task on the fleet for one of these Agents, in this task's namespace and queue; it starts "
            "when a node is free and its dependsOn (your earlier sub-tasks) have passed. Returns its name.",
            {
                "agent": {"type": "string", "enum": list(agents)},
                "prompt": {"type": "string", "description": "What the sub-task is to do."},
                "payload": {"type": "object", "description": "Inputs for the sub-task (its payload.inputs)."},
                "dependsOn": {**_NAMES, "description": "Names of your earlier sub-tasks it must wait for."},
            },
            ["agent", "prompt"],
        ),
        "wait_for_tasks": _function(
            "wait_for_tasks",
            "Wait until the given sub-tasks finish (or the timeout passes); returns each one's phase, verdict and "
            "summary.",
            {"names": _NAMES, "timeout_seconds": {"type": "number", "minimum": 0}},
            ["names"],
        ),
        "list_my_tasks": _function(
            "list_my_tasks", "List the sub-tasks you created, with their phase and verdict.", {}, []
        ),
        "cancel_my_task": _function(
            "cancel_my_task", "Cancel one of your sub-tasks.", {"name": {"type": "string"}}, ["name"]
        ),
    }


@dataclass
class Subtasks:
    """One parent task's sub-task tools: what it created so far, and the apiserver through the worker."""

    parent: AgenticTask
    policy: SubtaskPolicy
    fleet: Children
    node: str
    deadline: float
    """When the parent's timeout runs out (`clock` time)."""
    metrics: WorkerMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    created: list[str] = field(default_factory=list)
    taken: int = 0
    """Names this parent's children would have had that other tasks hold (names are cut to fit a label)."""

    def __post_init__(self) -> None:
        self.created = list(self.parent.status.children)  # NB: an earlier attempt's children still count

    def definitions(self) -> list[dict[str, Any]]:
        return list(definitions(self.policy.agents).values())

    def schemas(self) -> dict[str, dict[str, Any]]:
        return {name: tool["function"]["parameters"] for name, tool in definitions(self.policy.agents).items()}

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        try:
            if name == "submit_task":
                return await self.submit(arguments)
            if name == "wait_for_tasks":
                return await self.wait(arguments.get("names"), arguments.get("timeout_seconds"))
            if name == "list_my_tasks":
                return _shown([_state(task) for task in (await self.fleet.children()).values()])
            if name == "cancel_my_task":
                return await self.cancel(arguments.get("name"))
        except ApiError as error:
            raise ToolError(f"{name}: the apiserver said: {error}") from None
        raise ToolError(f"unknown tool {name!r}")

    async def submit(self, arguments: dict[str, Any]) -> str:
        agent, prompt = arguments.get("agent"), arguments.get("prompt")
        inputs, depends_on = arguments.get("payload", {}), arguments.get("dependsOn", [])
        refused = subtasks.submission_refusal(self.parent, self.policy, self.created, agent=agent, prompt=prompt,
                                              inputs=inputs, depends_on=depends_on)  # fmt: skip
        if refused is None and not await self.fleet.agent_exists(str(agent)):
            refused = f"Agent {agent!r} does not exist in namespace {self.parent.namespace}"
        if refused is not None:
            self._count("refused")
            raise ToolError(refused)
        name = subtasks.child_name(self.parent.name, len(self.created) + self.taken + 1)
        child = subtasks.child_task(self.parent, name=name, agent=str(agent), prompt=str(prompt), inputs=dict(inputs),
                                    depends_on=list(depends_on), node=self.node)  # fmt: skip
        try:
            await self.fleet.create(child)
        except AlreadyExists:
            if name not in await self.fleet.children():  # NB: another task has the name; the next try takes the next
                self.taken += 1
                raise ToolError(f"the name {name} is taken by a task that is not yours; try again") from None
            # NB: an earlier attempt's child that the parent's status missed: it counts, but it is not this one
            await self._record(name)
            raise ToolError(f"{name} is a sub-task an earlier attempt of this task made (see list_my_tasks); "
                            "submit again for this one") from None  # fmt: skip
        except ApiError:
            self._count("refused")
            raise
        self._count("created")
        await self._record(name)
        return json.dumps({"name": name})

    async def _record(self, name: str) -> None:
        """One more child of the parent's, and listed in its status."""
        self.created.append(name)
        try:
            await self.fleet.record(self.created)
        except ApiError as error:  # NB: the child exists; the status list catches up with the next one (or not)
            log.warning("children not listed in the parent's status", task=self.parent.name, error=str(error))

    async def wait(self, names: object, timeout_seconds: object) -> str:
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ToolError("names must be a non-empty list of your sub-tasks' names")
        if strangers := [n for n in names if n not in self.created]:
            raise ToolError(f"not your sub-tasks: {', '.join(strangers)} (yours: {', '.join(self.created) or 'none'})")
        requested = None
        if timeout_seconds is not None:
            if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float):
                raise ToolError("timeout_seconds must be a number")
            requested = float(timeout_seconds)
        seconds = wait_seconds(requested, self.deadline - self.clock())
        found: dict[str, AgenticTask] | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds), contextlib.aclosing(self.fleet.watch_children()) as changes:
                async for found in changes:
                    if all(n in found and found[n].phase in TERMINAL_PHASES for n in names):
                        break
                    found = None
        if found is None:  # NB: out of time: as they stand now
            found = await self.fleet.children()
        states = [_state(found[n]) if n in found else {"name": n, "phase": "Deleted"} for n in names]
        waiting = [s["name"] for s in states if s["phase"] not in (*TERMINAL_PHASES, "Deleted")]
        return _shown(states, {"stillRunning": waiting} if waiting else {})

    async def cancel(self, name: object) -> str:
        if not isinstance(name, str) or name not in self.created:
            raise ToolError(f"not one of your sub-tasks: {name!r} (yours: {', '.join(self.created) or 'none'})")
        await self.fleet.cancel(name)
        return f"cancel requested for {name}"

    async def records(self) -> list[ChildRecord]:
        """The children for the parent's envelope; read now (none read when it made none)."""
        if not self.created:
            return []
        try:
            found: dict[str, AgenticTask | None] = {**(await self.fleet.children())}
        except ApiError:
            found = {}
        return subtasks.records(self.created, found)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.agent_subtasks.labels(outcome).inc()


def wait_seconds(requested: float | None, left: float) -> float:
    """How long wait_for_tasks waits: what the model asked (0: not at all; none: as long as the parent may), never
    into the time the parent keeps to submit its result (RESERVE of what is `left`, at most a minute)."""
    most = left - min(60.0, left * RESERVE)
    return max(0.0, most if requested is None else min(float(requested), most))


def _state(task: AgenticTask) -> dict[str, Any]:
    result = task.status.result
    state: dict[str, Any] = {"name": task.name, "phase": task.phase, "verdict": task.status.verdict}
    if result is not None:
        state["summary"] = result.summary[:SUMMARY_SHOWN]
    if task.status.failure_reason:
        state["failureReason"] = task.status.failure_reason
    return state


def _shown(states: list[dict[str, Any]], more: dict[str, Any] | None = None) -> str:
    return json.dumps({"tasks": states, **(more or {})}, ensure_ascii=False)
