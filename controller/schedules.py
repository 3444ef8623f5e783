"""The TaskSchedule loop: at each due slot, and whenever a schedule or one of its tasks changes, carry out
`firing.plan` (create, cancel, delete tasks; write the schedule's status).

It runs inside the controller, under its leadership and on its cache: the controller's watches feed both, so a
schedule costs no extra watch of tasks. The controller runs its passes (`run_once`) while it leads, and carries out
what each returns (`Fired`: tasks to remember, notes to emit as Events). Time comes from an injectable clock, so
tests can move it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from foreman.api.http.client import Kube
from foreman.api.http.errors import AlreadyExists, ApiError, Conflict, NotFound
from foreman.api.lifecycle import agent_schedules, reasons
from foreman.api.lifecycle.agent_schedules import Refusal
from foreman.api.models.base import find_condition, is_newer, key_of
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.api.runtime.workqueue import WorkQueue
from foreman.controller.cache import Cache, ScheduleKey
from foreman.controller.deletion import delete_finished
from foreman.controller.firing import Note, Plan, plan

log = structlog.get_logger("foreman.schedules")

CLEARABLE = ("lastScheduleTime", "nextScheduleTime", "lastTrigger")
"""Status fields a plan may leave out; a merge patch needs an explicit null to remove them."""


def status_patch(result: Plan) -> dict[str, Any]:
    body = result.status.to_wire()
    return {**dict.fromkeys(CLEARABLE), **body}


@dataclass
class Fired:
    """What a schedule pass did that the controller carries on with."""

    tasks: list[AgenticTask] = field(default_factory=list)
    """Tasks created (or found created by an earlier fire): for the controller's cache, and to be placed."""
    notes: list[tuple[TaskSchedule, Note]] = field(default_factory=list)
    """What to tell about each schedule (its Events)."""
    decided: list[str] = field(default_factory=list)
    """The Accepted reasons written to agent-made schedules in this pass, one per new decision (for the metrics)."""


class ScheduleLoop:
    def __init__(self, kube: Kube, cache: Cache, *, clock: Callable[[], datetime], concurrency: int):
        self.kube = kube
        self.cache = cache
        self.clock = clock
        self.concurrency = concurrency
        self.schedules: dict[ScheduleKey, TaskSchedule] = {}
        self.queue: WorkQueue[ScheduleKey] = WorkQueue(lambda: self.clock().timestamp())
        """Schedules to plan again: changed, their tasks changed, a slot due, a failed step retried."""

    # -- fed by the controller's watch -----------------------------------------------------------------------------

    def upsert(self, schedule: TaskSchedule) -> None:
        if self._store(schedule):
            self.queue.add(key_of(schedule))

    def _store(self, schedule: TaskSchedule) -> bool:
        key = key_of(schedule)
        old = self.schedules.get(key)
        if old is None or is_newer(schedule.metadata.resource_version, old.metadata.resource_version):
            self.schedules[key] = schedule
            return True
        return False

    def remove(self, schedule: TaskSchedule) -> None:
        self.schedules.pop(key_of(schedule), None)
        self.queue.remove(key_of(schedule))

    def replace(self, schedules: Iterable[TaskSchedule], namespace: str | None) -> None:
        listed = {key_of(schedule): schedule for schedule in schedules}
        for key in [key for key in self.schedules if namespace in (None, key[0]) and key not in listed]:
            del self.schedules[key]
            self.queue.remove(key)
        self.schedules.update(listed)
        self.queue.add_all(listed)

    def tasks_changed(self, keys: Iterable[ScheduleKey]) -> None:
        """Tasks of these schedules changed (the controller's cache says which): plan them again."""
        self.queue.add_all(key for key in keys if key in self.schedules)

    def mark_all(self) -> None:
        self.queue.add_all(self.schedules)

    def wake(self) -> None:
        """Look again now: the clock moved (tests)."""
        self.queue.poke()

    # -- running ---------------------------------------------------------------------------------------------------

    async def run_once(self, now: datetime) -> Fired:
        """Plan and carry out every schedule that is due or changed."""
        semaphore = asyncio.Semaphore(self.concurrency)
        done = Fired()

        async def bounded(key: ScheduleKey) -> None:
            async with semaphore:
                await self.reconcile(key, now, done)

        await asyncio.gather(*(bounded(key) for key in self.queue.take()))
        return done

    async def reconcile(self, key: ScheduleKey, now: datetime, done: Fired) -> None:
        schedule = self.schedules.get(key)
        if schedule is None:
            return
        refused = self.bounds(schedule, now)
        result = plan(schedule, self.cache.schedule_tasks(key), now, refused)
        bound = log.bind(schedule=schedule.name, namespace=schedule.namespace)
        if result.wake_at is None:
            self.queue.cancel_after(key)
        else:
            self.queue.add_at(key, result.wake_at.timestamp())
        try:
            for task in result.create:
                done.tasks.append(await self._create(task))
            for name in result.cancel:
                await self._ignore_missing(
                    self.kube.patch(AgenticTask, name, {"spec": {"cancel": True}}, namespace=schedule.namespace)
                )
            for name in result.delete:
                # NB: finished tasks of the cache (the plan's input), deleted with their transcripts
                if (finished := self.cache.task((key[0], name))) is not None:
                    await self._ignore_missing(delete_finished(self.kube, finished))
                    bound.info("task past the history limit deleted", task=name)
            # NB: noted before the status write: after a conflict the new plan finds the created tasks and says
            # nothing of them again
            for note in result.notes:
                bound.info(note.message, reason=note.reason)
                done.notes.append((schedule, note))
            if result.status != schedule.status:
                updated = await self.kube.patch_status(
                    TaskSchedule,
                    schedule.name,
                    status_patch(result),
                    namespace=schedule.namespace,
                    resource_version=schedule.metadata.resource_version,
                )
                self._store(updated)  # NB: our own write: no reason to plan again
                if schedule.spec.source == "agent" and (reason := _new_decision(schedule, result)):
                    done.decided.append(reason)
        except Conflict:
            bound.debug("schedule changed meanwhile, planning again")
            await self._refresh(schedule)
            return
        except NotFound:
            self.remove(schedule)
            return
        except ApiError as error:
            delay = self.queue.retry(key)
            bound.warning("schedule step failed, retrying", error=str(error), retry_in=delay)
            return
        self.queue.forget(key)

    def bounds(self, schedule: TaskSchedule, now: datetime) -> Refusal | None:
        """Why an agent-made schedule may not fire (None: it may, or it is not an agent's): decided once per
        generation, from the controller's caches (agent_schedules)."""
        if schedule.spec.source != "agent":
            return None
        earlier = agent_schedules.decided(schedule)
        if earlier is not False:
            return earlier
        namespace = schedule.namespace or ""
        creator = schedule.spec.created_by
        parent = self.cache.task((namespace, creator.task)) if creator is not None else None
        agent = self.cache.agent_of(parent) if parent is not None else None
        siblings = [known for (space, _), known in self.schedules.items() if space == namespace]
        return agent_schedules.refusal(
            schedule, parent=parent, agent=agent, schedules=siblings, now=now,
            fired_by_agent=parent is not None and agent_schedules.fired_by(parent, siblings),
        )  # fmt: skip

    async def _create(self, task: AgenticTask) -> AgenticTask:
        try:
            return await self.kube.create(task)
        except AlreadyExists:
            # NB: fired before (a restart, a lost answer): the existing task is the fire; never a second one
            return await self.kube.get(AgenticTask, task.name, task.namespace)

    @staticmethod
    async def _ignore_missing(call: Any) -> None:
        with contextlib.suppress(NotFound):
            await call

    async def _refresh(self, schedule: TaskSchedule) -> None:
        try:
            self.upsert(await self.kube.get(TaskSchedule, schedule.name, schedule.namespace))
        except NotFound:
            self.remove(schedule)
        except ApiError:
            self.queue.retry(key_of(schedule))


def _new_decision(schedule: TaskSchedule, result: Plan) -> str | None:
    """The Accepted reason a plan writes to a schedule, when it is new for this generation."""
    old = find_condition(schedule.status.conditions, reasons.ACCEPTED)
    new = find_condition(result.status.conditions, reasons.ACCEPTED)
    if new is None or (
        old is not None and (old.reason, old.observed_generation) == (new.reason, new.observed_generation)
    ):
        return None
    return new.reason
