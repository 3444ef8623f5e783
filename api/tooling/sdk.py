"""The planner SDK: submit tasks and graphs of tasks, wait for their results (watch-based), cancel them.

async with await ForemanClient.connect() as foreman:  # the kubeconfig context's namespace, as kubectl
    task = await foreman.submit(AgenticTask.new(prompt="Summarise the incident", accelerator="cuda"))
    envelope = await foreman.wait(task.name, timeout=600)
"""

from __future__ import annotations

import asyncio
import builtins
import graphlib
import secrets
from collections.abc import AsyncIterator, Iterable
from typing import Any, Self

from foreman.api.cron.expression import parse
from foreman.api.http.client import Kube, RetryPolicy, WatchEvent
from foreman.api.http.errors import Conflict, NotFound
from foreman.api.http.requests import creatable_body
from foreman.api.lifecycle import reasons
from foreman.api.models import transcript
from foreman.api.models.base import STORED, ObjectMeta, find_condition, utcnow
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.schedules import (
    TRIGGER_ANNOTATION,
    TaskSchedule,
    TaskScheduleSpec,
    TaskTemplate,
    TemplateMeta,
    manual_task_name,
)
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask


class TaskFailed(Exception):
    """The task ended Failed; `reason` is its failureReason, `envelope` its result (when it has one)."""

    def __init__(self, task: AgenticTask):
        self.task = task
        self.reason = task.status.failure_reason or "Failed"
        self.envelope = task.status.result
        finished = find_condition(task.status.conditions, reasons.FINISHED)
        detail = finished.message if finished else ""
        super().__init__(f"task {task.name} failed: {self.reason}" + (f" ({detail})" if detail else ""))


class WaitTimeout(TimeoutError):
    """The tasks did not finish in time (they keep running; wait again or cancel them)."""


class DependencyCycleError(ValueError):
    """A submitted graph has a cycle; nothing was created."""


class MissingDependencyError(ValueError):
    """A task depends on a name that is neither in the graph nor in the namespace; nothing was created."""


class NotOurs(ValueError):
    """A schedule of that name exists and belongs to the other source (declarative vs dynamic): left alone."""


class AlreadyFinished(ValueError):
    """`cancel` of a task that had already finished: nothing was changed."""

    def __init__(self, task: AgenticTask):
        self.task = task
        super().__init__(f"agentictask/{task.name} already {task.phase}; nothing to cancel")


class AlreadyTriggered(ValueError):
    """`trigger` with an id that already fired the schedule: it does not fire again."""


def creation_order(tasks: Iterable[AgenticTask], existing: Iterable[str] = ()) -> list[AgenticTask]:
    """Upstream first (pure). Raises DependencyCycleError or MissingDependencyError before anything is created."""
    by_name = {task.name: task for task in tasks}
    known = set(by_name) | set(existing)
    for task in by_name.values():
        missing = [name for name in task.spec.depends_on if name not in known]
        if missing:
            raise MissingDependencyError(f"{task.name} depends on {', '.join(missing)}, which is not in the graph")
    sorter = graphlib.TopologicalSorter(
        {name: [u for u in t.spec.depends_on if u in by_name] for name, t in by_name.items()}
    )
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as error:
        raise DependencyCycleError("dependency cycle: " + " -> ".join(error.args[1])) from None
    return [by_name[name] for name in order]


class ForemanClient:
    def __init__(self, kube: Kube, namespace: str = "default"):
        self.kube = kube
        self.namespace = namespace

    @classmethod
    async def connect(
        cls, kubeconfig: str | None = None, *, namespace: str | None = None, retry: RetryPolicy | None = None
    ) -> Self:
        """No namespace: the kubeconfig context's (as kubectl), else `default`."""
        kube = await Kube.connect(kubeconfig, retry=retry)
        return cls(kube, namespace or kube.namespace)

    async def close(self) -> None:
        await self.kube.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _placed(self, task: AgenticTask) -> AgenticTask:
        if task.metadata.namespace:
            return task
        return task.model_copy(update={"metadata": task.metadata.model_copy(update={"namespace": self.namespace})})

    async def submit(self, task: AgenticTask) -> AgenticTask:
        """Create one task (in the client's namespace unless it names one); returns it as stored."""
        return await self.kube.create(self._placed(task))

    async def submit_graph(self, tasks: Iterable[AgenticTask]) -> list[AgenticTask]:
        """Create a DAG of named tasks, upstream first, after checking it for cycles and unknown names.

        A dependency may also name a task that already exists in the namespace.
        """
        graph = [self._placed(task) for task in tasks]
        if any(task.metadata.name is None for task in graph):
            raise ValueError("tasks in a graph need names (dependsOn refers to them)")
        outside = {u for task in graph for u in task.spec.depends_on} - {task.name for task in graph}
        existing = [name for name in outside if await self._exists(name)]
        ordered = creation_order(graph, existing)
        for task in ordered:
            creatable_body(task)  # NB: a task too large to store is refused before anything is created
        return [await self.kube.create(task) for task in ordered]

    async def get(self, name: str) -> AgenticTask:
        return await self.kube.get(AgenticTask, name, self.namespace)

    async def list(self, selector: str | None = None) -> list[AgenticTask]:
        return (await self.kube.list(AgenticTask, namespace=self.namespace, label_selector=selector)).items

    async def cancel(self, name: str) -> AgenticTask:
        """Set spec.cancel: a Pending or Scheduled task fails at once, a Running one within seconds. A finished task
        is left as it is (AlreadyFinished): the patch carries the resourceVersion it was judged on."""
        while True:
            task = await self.get(name)
            if task.phase in TERMINAL_PHASES:
                raise AlreadyFinished(task)
            try:
                return await self.kube.patch(
                    AgenticTask,
                    name,
                    {"spec": {"cancel": True}},
                    namespace=self.namespace,
                    resource_version=task.metadata.resource_version,
                )
            except Conflict:
                continue  # it moved meanwhile (perhaps it finished): judge it again

    async def delete(self, name: str) -> None:
        await self.kube.delete(AgenticTask, name, self.namespace)

    async def transcript(self, name: str, attempt: int | None = None) -> str | None:
        """An agent task's transcript (JSON lines, `foreman.api.models.transcript`) of one attempt (default: the
        latest), or None while it has none."""
        if attempt is None:
            task = await self.get(name)
            history = task.status.attempt_history
            attempt = history[-1].number if history else 1
        try:
            configmap = await self.kube.get_raw(
                "v1", "ConfigMap", transcript.configmap_name(name, attempt), self.namespace
            )
        except NotFound:
            return None
        text = (configmap.get("data") or {}).get(transcript.KEY)
        return str(text) if text is not None else None

    async def wait(self, name: str, timeout: float | None = None) -> ResultEnvelope:  # noqa: ASYNC109 - public API
        """The task's result envelope once it Succeeded (whatever the verdict); TaskFailed if it Failed."""
        async for task in self.as_completed([name], timeout=timeout):
            if task.phase == "Failed":
                raise TaskFailed(task)
            assert task.status.result is not None, "a Succeeded task carries its envelope"
            return task.status.result
        raise AssertionError("as_completed yields every name")  # pragma: no cover

    async def as_completed(
        self,
        names: Iterable[str],
        timeout: float | None = None,  # noqa: ASYNC109 - public API, like asyncio.as_completed
    ) -> AsyncIterator[AgenticTask]:
        """Yield each task as it finishes (Succeeded or Failed), from one watch: of the task alone when there is one,
        else of the namespace."""
        waiting = set(names)
        only = f"metadata.name={next(iter(waiting))}" if len(waiting) == 1 else None
        try:
            async with asyncio.timeout(timeout):
                async for event in self.kube.watch(AgenticTask, namespace=self.namespace, field_selector=only):
                    for task in [event.object] if isinstance(event, WatchEvent) else event.items:
                        if task.name in waiting and task.phase in TERMINAL_PHASES:
                            waiting.discard(task.name)
                            yield task
                    if not waiting:
                        return
        except TimeoutError:
            raise WaitTimeout(f"still running after {timeout:g} s: {', '.join(sorted(waiting))}") from None

    # -- schedules -------------------------------------------------------------------------------------------------

    async def schedule(
        self, name: str, task: AgenticTask, *, cron: str, time_zone: str = "UTC", **settings: Any
    ) -> TaskSchedule:
        """Create or update a dynamic TaskSchedule that creates `task` (name aside) on `cron` in `time_zone`.

        `settings` are other spec fields by their Python names (concurrency_policy="Replace", suspend=True, ...).
        The expression and zone are checked here first (ScheduleError). A declarative schedule of the same name
        (one `foreman schedule sync` keeps) is not taken over: NotOurs.
        """
        parse(cron, time_zone)
        template = TaskTemplate(
            metadata=TemplateMeta(labels=task.metadata.labels, annotations=task.metadata.annotations), spec=task.spec
        )
        spec = TaskScheduleSpec(
            schedule=cron, time_zone=time_zone, task_template=template, **{**settings, "source": "dynamic"}
        )
        wanted = TaskSchedule(metadata=ObjectMeta(name=name, namespace=self.namespace), spec=spec)
        await self._refuse_other_source(wanted)
        return await self.apply_schedule(wanted)

    async def apply_schedule(self, schedule: TaskSchedule) -> TaskSchedule:
        """Server-side apply (field manager `foreman`): creates, or updates to exactly this spec."""
        meta = schedule.metadata
        manifest = {
            "apiVersion": schedule.api_version,
            "kind": schedule.kind,
            "metadata": {
                "name": meta.name,
                "namespace": meta.namespace or self.namespace,
                "labels": meta.labels,
                "annotations": meta.annotations,
            },
            "spec": schedule.spec.to_wire(),
        }
        return TaskSchedule.model_validate(await self.kube.apply(manifest), context=STORED)

    async def _refuse_other_source(self, wanted: TaskSchedule) -> None:
        try:
            existing = await self.get_schedule(wanted.name, wanted.namespace)
        except NotFound:
            return
        if existing.spec.source != wanted.spec.source:
            raise NotOurs(f"taskschedule {wanted.name} is {existing.spec.source}; not changing it from here")

    async def _exists(self, task_name: str) -> bool:
        try:
            await self.get(task_name)
        except NotFound:
            return False
        return True

    async def get_schedule(self, name: str, namespace: str | None = None) -> TaskSchedule:
        return await self.kube.get(TaskSchedule, name, namespace or self.namespace)

    async def list_schedules(self, namespace: str | None = None) -> builtins.list[TaskSchedule]:
        return (await self.kube.list(TaskSchedule, namespace=namespace or self.namespace)).items

    async def delete_schedule(self, name: str, namespace: str | None = None) -> None:
        await self.kube.delete(TaskSchedule, name, namespace or self.namespace)

    async def trigger(self, name: str, trigger_id: str | None = None) -> str:
        """Fire a schedule once now (even if suspended); the same id never fires twice. Returns the task's name."""
        if trigger_id is not None:
            task_name = manual_task_name(name, trigger_id)
            schedule = await self.get_schedule(name)
            fired = trigger_id in (
                schedule.metadata.annotations.get(TRIGGER_ANNOTATION),  # asked for already, fired or about to be
                schedule.status.last_trigger,
                *(run.trigger for run in schedule.status.run_history),
            )
            if fired or await self._exists(task_name):
                raise AlreadyTriggered(f"taskschedule/{name} already fired for id {trigger_id!r} ({task_name})")
        trigger_id = trigger_id or f"{utcnow():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        patch = {"metadata": {"annotations": {TRIGGER_ANNOTATION: trigger_id}}}
        await self.kube.patch(TaskSchedule, name, patch, namespace=self.namespace)
        return manual_task_name(name, trigger_id)
