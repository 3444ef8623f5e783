"""What a running task may create on the fleet, bound to that task: its children (the sub-task tools) and its
schedules (`set_schedule`); `TaskFleet`, and the worker's own implementation on its Kubernetes client (the executor
never holds the client itself, only this narrow view of it).

Every call is made with the worker's own token, so admission and RBAC hold it whatever the tools decide.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any, Protocol

from foreman.api.http.client import Kube, Relisted
from foreman.api.http.errors import NotFound
from foreman.api.lifecycle import subtasks
from foreman.api.models.agents import Agent, AgentSpec
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.subtasks import PARENT_LABEL
from foreman.api.models.tasks import AgenticTask


def may_create(task: AgenticTask, agent: AgentSpec | None) -> bool:
    """Whether this attempt of the task, `agent` its acting Agent, may create anything on the fleet: children
    (`subtasks.agents`) or schedules (`subtasks.maxSchedules`); only those are lent a fleet. Never a reviewer's: the
    controller holds children to the bounds of the task's own Agent, and a review judges the work, it adds none."""
    if agent is None or task.reviewing or agent.subtasks is None:
        return False
    return bool(agent.subtasks.agents) or agent.subtasks.max_schedules > 0


class AgentLookup(Protocol):
    async def agent_exists(self, name: str) -> bool:
        """Whether the parent's namespace has an Agent of that name."""
        ...


class Children(AgentLookup, Protocol):
    """The parent's children, and the Agents they may name (the sub-task tools)."""

    async def create(self, child: AgenticTask) -> AgenticTask: ...

    async def children(self) -> dict[str, AgenticTask]:
        """The parent's children as they stand now, by name."""
        ...

    def watch_children(self) -> AsyncGenerator[dict[str, AgenticTask]]:
        """The parent's children now, then again after each change (a watch, not a poll)."""
        ...

    async def cancel(self, name: str) -> None: ...

    async def record(self, names: list[str]) -> None:
        """Lists the children in the parent's status."""
        ...


class Schedules(AgentLookup, Protocol):
    """The TaskSchedules in the parent's namespace that `set_schedule` reads and writes, and the worker's clock."""

    def now(self) -> datetime: ...

    async def schedules(self) -> list[TaskSchedule]:
        """The schedules labelled with the parent's name (what counts against its maxSchedules)."""
        ...

    async def schedule(self, name: str) -> TaskSchedule | None: ...

    async def create_schedule(self, schedule: TaskSchedule) -> None: ...

    async def patch_schedule(self, name: str, body: dict[str, Any]) -> None: ...


class TaskFleet(Children, Schedules, Protocol):
    """Everything a task may create on the fleet; each tool takes only its part (`Children`, `Schedules`)."""


class KubeFleet:
    def __init__(self, kube: Kube, parent: AgenticTask, clock: Callable[[], datetime]):
        self.kube = kube
        self.parent = parent
        self.clock = clock

    def now(self) -> datetime:
        return self.clock()

    async def agent_exists(self, name: str) -> bool:
        try:
            await self.kube.get(Agent, name, self.parent.namespace)
        except NotFound:
            return False
        return True

    async def create(self, child: AgenticTask) -> AgenticTask:
        return await self.kube.create(child)

    async def children(self) -> dict[str, AgenticTask]:
        listed = await self.kube.list(AgenticTask, namespace=self.parent.namespace, label_selector=self.selector)
        return self.owned(listed.items)

    async def watch_children(self) -> AsyncGenerator[dict[str, AgenticTask]]:
        state: dict[str, AgenticTask] = {}
        events = self.kube.watch(AgenticTask, namespace=self.parent.namespace, label_selector=self.selector)
        try:
            async for event in events:
                if isinstance(event, Relisted):
                    state = self.owned(event.items)
                elif event.type == "DELETED":
                    state.pop(event.object.name, None)
                else:
                    state.update(self.owned([event.object]))
                yield dict(state)
        finally:
            if (close := getattr(events, "aclose", None)) is not None:  # NB: the watch's stream, at once
                await close()

    @property
    def selector(self) -> str:
        return f"{PARENT_LABEL}={self.parent.name}"

    def owned(self, tasks: list[AgenticTask]) -> dict[str, AgenticTask]:
        return {task.name: task for task in subtasks.children_of(self.parent, tasks)}

    async def cancel(self, name: str) -> None:
        await self.kube.patch(AgenticTask, name, {"spec": {"cancel": True}}, namespace=self.parent.namespace)

    async def record(self, names: list[str]) -> None:
        await self.kube.patch_status(AgenticTask, self.parent.name, {"children": names},
                                     namespace=self.parent.namespace)  # fmt: skip

    async def schedules(self) -> list[TaskSchedule]:
        listed = await self.kube.list(TaskSchedule, namespace=self.parent.namespace, label_selector=self.selector)
        return listed.items

    async def schedule(self, name: str) -> TaskSchedule | None:
        try:
            return await self.kube.get(TaskSchedule, name, self.parent.namespace)
        except NotFound:
            return None

    async def create_schedule(self, schedule: TaskSchedule) -> None:
        await self.kube.create(schedule)

    async def patch_schedule(self, name: str, body: dict[str, Any]) -> None:
        await self.kube.patch(TaskSchedule, name, body, namespace=self.parent.namespace)
