"""What an agent's sub-task tools ask of the apiserver, for one parent task: `TaskFleet`, and the worker's own
implementation on its Kubernetes client (the executor never holds the client itself).

Every call is made with the worker's own token, so admission and RBAC hold it whatever the tools decide.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from foreman.api.http.errors import NotFound
from foreman.api.http.kube import Relisted
from foreman.api.http.kubeapi import KubeApi
from foreman.api.models.agents import Agent
from foreman.api.models.resources import AgenticTask
from foreman.api.models.subtasks import PARENT_LABEL
from foreman.api.state import subtasks


class TaskFleet(Protocol):
    """The parent's view of the fleet: its children, and the Agents they may name."""

    async def agent_exists(self, name: str) -> bool: ...

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


class KubeFleet:
    def __init__(self, kube: KubeApi, parent: AgenticTask):
        self.kube = kube
        self.parent = parent

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
