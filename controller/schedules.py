"""The TaskSchedule loop: at each due slot, and whenever a schedule or one of its tasks changes, carry out
`firing.plan` (create, cancel, delete tasks; write the schedule's status).

It runs inside the controller, under its leadership and on its cache: the controller's watches feed both, so a
schedule costs no extra watch of tasks. Time comes from an injectable clock, so tests can move it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import structlog

from foreman.api.daemon import sleep_unless
from foreman.api.errors import AlreadyExists, ApiError, Conflict, NotFound
from foreman.api.kube import Kube
from foreman.api.resources import AgenticTask, key_of
from foreman.api.schedules import TaskSchedule
from foreman.controller.cache import Cache, ScheduleKey, is_newer
from foreman.controller.firing import Note, Plan, plan

log = structlog.get_logger("foreman.schedules")

CLEARABLE = ("lastScheduleTime", "nextScheduleTime", "lastTrigger")
"""Status fields a plan may leave out; a merge patch needs an explicit null to remove them."""


def status_patch(result: Plan) -> dict[str, Any]:
    body = result.status.to_wire()
    return {**dict.fromkeys(CLEARABLE), **body}


class ScheduleLoop:
    def __init__(
        self,
        kube: Kube,
        cache: Cache,
        *,
        clock: Callable[[], datetime],
        leading: Callable[[], bool],
        remember: Callable[[AgenticTask], None],
        record: Callable[[TaskSchedule, Note], None],
        check_every: float,
        concurrency: int,
    ):
        self.kube = kube
        self.cache = cache
        self.clock = clock
        self.leading = leading
        self.remember = remember
        """Put a task this loop created or read into the controller's cache (and let the controller place it)."""
        self.record = record
        self.check_every = check_every
        """Longest sleep without an event: bounds how late a fire is after a wall-clock jump (suspend, NTP)."""
        self.concurrency = concurrency
        self.schedules: dict[ScheduleKey, TaskSchedule] = {}
        self._dirty: set[ScheduleKey] = set()
        self._due: dict[ScheduleKey, datetime] = {}
        self._wake = asyncio.Event()

    # -- fed by the controller's watch -----------------------------------------------------------------------------

    def upsert(self, schedule: TaskSchedule) -> None:
        key = key_of(schedule)
        old = self.schedules.get(key)
        if old is None or is_newer(schedule.metadata.resource_version, old.metadata.resource_version):
            self.schedules[key] = schedule
            self.mark({key})

    def remove(self, schedule: TaskSchedule) -> None:
        self.schedules.pop(key_of(schedule), None)
        self._due.pop(key_of(schedule), None)

    def replace(self, schedules: Iterable[TaskSchedule], namespace: str | None) -> None:
        listed = {key_of(schedule): schedule for schedule in schedules}
        for key in [key for key in self.schedules if namespace in (None, key[0]) and key not in listed]:
            del self.schedules[key]
            self._due.pop(key, None)
        self.schedules.update(listed)
        self.mark(set(listed))

    def mark(self, keys: set[ScheduleKey]) -> None:
        self._dirty |= keys
        self._wake.set()

    def mark_all(self) -> None:
        self.mark(set(self.schedules))

    def wake(self) -> None:
        """Look again now: the clock moved (tests) or tasks changed (`cache.touched_schedules`)."""
        self._wake.set()

    # -- running ---------------------------------------------------------------------------------------------------

    async def run(self, ready: Callable[[], bool]) -> None:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def bounded(key: ScheduleKey, now: datetime) -> None:
            async with semaphore:
                await self.reconcile(key, now)

        while True:
            acting = self.leading() and ready()
            # NB: a standby sleeps the full period, or due times in the past would make it spin
            await sleep_unless(self._wake, self._sleep_for() if acting else self.check_every)
            self._wake.clear()
            if not (self.leading() and ready()):
                continue
            now = self.clock()
            self._dirty |= self.cache.touched_schedules & self.schedules.keys()
            self.cache.touched_schedules.clear()
            keys = self._dirty | {key for key, due in self._due.items() if due <= now}
            self._dirty = set()
            await asyncio.gather(*(bounded(key, now) for key in keys))

    def _sleep_for(self) -> float:
        if not self._due:
            return self.check_every
        seconds = (min(self._due.values()) - self.clock()).total_seconds()
        return min(self.check_every, max(0.0, seconds))

    async def reconcile(self, key: ScheduleKey, now: datetime) -> None:
        schedule = self.schedules.get(key)
        if schedule is None:
            self._due.pop(key, None)
            return
        result = plan(schedule, self.cache.schedule_tasks(key), now)
        bound = log.bind(schedule=schedule.name, namespace=schedule.namespace)
        if result.wake_at is None:
            self._due.pop(key, None)
        else:
            self._due[key] = result.wake_at
        try:
            for task in result.create:
                await self._create(task)
            for name in result.cancel:
                await self._ignore_missing(
                    self.kube.patch(AgenticTask, name, {"spec": {"cancel": True}}, namespace=schedule.namespace)
                )
            for name in result.delete:
                await self._ignore_missing(self.kube.delete(AgenticTask, name, schedule.namespace))
                bound.info("task past the history limit deleted", task=name)
            # NB: noted before the status write: after a conflict the new plan finds the created tasks and says
            # nothing of them again
            for note in result.notes:
                bound.info(note.message, reason=note.reason)
                self.record(schedule, note)
            if result.status != schedule.status:
                updated = await self.kube.patch_status(
                    TaskSchedule,
                    schedule.name,
                    status_patch(result),
                    namespace=schedule.namespace,
                    resource_version=schedule.metadata.resource_version,
                )
                self.upsert(updated)
                self._dirty.discard(key)
        except Conflict:
            bound.debug("schedule changed meanwhile, planning again")
            await self._refresh(schedule)
            return
        except NotFound:
            self.remove(schedule)
            return
        except ApiError as error:
            bound.warning("schedule step failed, retrying", error=str(error))
            asyncio.get_running_loop().call_later(1.0, self.mark, {key})

    async def _create(self, task: AgenticTask) -> None:
        try:
            created = await self.kube.create(task)
        except AlreadyExists:
            # NB: fired before (a restart, a lost answer): the existing task is the fire; never a second one
            created = await self.kube.get(AgenticTask, task.name, task.namespace)
        self.remember(created)

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
            asyncio.get_running_loop().call_later(1.0, self.mark, {key_of(schedule)})
