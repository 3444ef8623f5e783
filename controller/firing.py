"""What a TaskSchedule should do now, as a pure function of the schedule, its tasks and the time.

`plan` answers with the tasks to create, cancel and delete and the status to write; the schedule loop carries it out.
Firing is restart-safe because a fire's task name is a function of its slot: a controller that dies between creating
the task and recording it finds the task (or gets AlreadyExists) and never fires the slot twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from foreman.api.cron.expression import Cron, ScheduleError, parse
from foreman.api.lifecycle import reasons
from foreman.api.lifecycle.agent_schedules import Refusal
from foreman.api.models.base import API_VERSION, ObjectMeta, OwnerReference, find_condition, set_condition, wire_time
from foreman.api.models.schedules import (
    ON_TIME_SECONDS,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
    TRIGGER_ANNOTATION,
    RunRecord,
    TaskSchedule,
    TaskScheduleStatus,
    manual_task_name,
    task_name,
)
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.controller import history

ON_TIME = timedelta(seconds=ON_TIME_SECONDS)
"""A fire noticed within this of its slot is on time; later, it is a catch-up (and with catchUp Skip, missed)."""


@dataclass(frozen=True)
class Note:
    """An Event to record on the schedule."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Plan:
    status: TaskScheduleStatus
    create: tuple[AgenticTask, ...] = ()
    cancel: tuple[str, ...] = ()
    """Active tasks to cancel (concurrencyPolicy Replace)."""
    delete: tuple[str, ...] = ()
    """Finished tasks past the history limits."""
    notes: tuple[Note, ...] = ()
    wake_at: datetime | None = None
    """When to look at the schedule again without any event (its next slot)."""


def task_for(schedule: TaskSchedule, name: str, slot: datetime, trigger: str | None = None) -> AgenticTask:
    """The task a fire creates: the template's spec, labels and annotations, plus where it came from."""
    template = schedule.spec.task_template
    annotations = {**template.metadata.annotations, SCHEDULED_AT_ANNOTATION: wire_time(slot)}
    if trigger is not None:
        annotations[TRIGGER_ANNOTATION] = trigger
    owner = OwnerReference(
        api_version=API_VERSION,
        kind=schedule.kind,
        name=schedule.name,
        uid=schedule.metadata.uid or "",
        controller=True,
        block_owner_deletion=True,
    )
    meta = ObjectMeta(
        name=name,
        namespace=schedule.namespace,
        labels={**template.metadata.labels, SCHEDULE_LABEL: schedule.name},
        annotations=annotations,
        owner_references=[owner] if schedule.metadata.uid else [],
    )
    return AgenticTask(metadata=meta, spec=template.spec)


def late_by(lateness: timedelta) -> str:
    return f"{lateness.total_seconds():.0f} s late"


@dataclass
class _Draft:
    """What a plan collects on its way (private: `plan` returns a frozen Plan)."""

    schedule: TaskSchedule
    tasks: dict[str, AgenticTask]
    now: datetime
    create: list[AgenticTask] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    skipped: list[RunRecord] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def fire(self, slot: datetime) -> None:
        """Deal with one slot that is due: create its task, or skip it (late, or Forbid), or replace the active."""
        spec = self.schedule.spec
        name = task_name(self.schedule.name, slot)
        if name in self.tasks:
            return  # created before a restart or a lost status write: the slot has fired
        lateness = self.now - slot
        deadline = spec.starting_deadline_seconds
        if deadline is not None and lateness > timedelta(seconds=deadline):
            self.skip(slot, f"missed: noticed {late_by(lateness)} (startingDeadlineSeconds {deadline})", warning=True)
            return
        if spec.catch_up == "Skip" and lateness > ON_TIME:
            self.skip(slot, f"missed: noticed {late_by(lateness)} (catchUp Skip)", warning=True)
            return
        running = [task.name for task in self.tasks.values() if task.phase not in TERMINAL_PHASES]
        if running and spec.concurrency_policy == "Forbid":
            self.skip(slot, f"{', '.join(sorted(running))} still active (concurrencyPolicy Forbid)")
            return
        if running and spec.concurrency_policy == "Replace":
            self.cancel += [name for name in running if not self.tasks[name].spec.cancel]
            self.notes.append(Note(reasons.TASK_REPLACED, f"cancelling {', '.join(sorted(running))} for {name}"))
        caught_up = f" (catch-up, {late_by(lateness)})" if lateness > ON_TIME else ""
        self.add(task_for(self.schedule, name, slot), f"created {name} for {wire_time(slot)}{caught_up}")

    def trigger(self, trigger: str) -> None:
        """A manual fire: now, whatever the suspend flag and concurrency policy (it was asked for)."""
        name = manual_task_name(self.schedule.name, trigger)
        if name not in self.tasks:
            self.add(task_for(self.schedule, name, self.now, trigger), f"created {name} for manual trigger {trigger}")

    def add(self, task: AgenticTask, message: str) -> None:
        self.create.append(task)
        self.tasks[task.name] = task
        self.notes.append(Note(reasons.TASK_CREATED, message))

    def skip(self, slot: datetime, message: str, *, warning: bool = False) -> None:
        self.skipped.append(RunRecord(scheduled_time=slot, phase="Skipped", message=message))
        self.notes.append(Note(reasons.FIRE_SKIPPED, f"{wire_time(slot)}: {message}", warning))


def due_slot(cron: Cron, schedule: TaskSchedule, now: datetime) -> datetime | None:
    """The latest slot not yet dealt with, if any. However many were missed, only the latest counts (catch-up runs
    once)."""
    since = schedule.status.last_schedule_time or schedule.metadata.creation_timestamp or now
    slot = cron.latest_at_or_before(now)
    return slot if slot is not None and slot > since else None


def plan(schedule: TaskSchedule, tasks: Sequence[AgenticTask], now: datetime, refused: Refusal | None = None) -> Plan:
    """`refused`: why an agent-made schedule is out of its bounds (agent_schedules.refusal): it never fires."""
    spec, current = schedule.spec, schedule.status
    draft = _Draft(schedule, {task.name: task for task in tasks}, now)
    last, upcoming = current.last_schedule_time, None
    accepted: tuple[Literal["True", "False"], str, str] = ("True", reasons.SCHEDULE_ACCEPTED, "")
    cron: Cron | None = None
    if refused is not None:
        accepted = ("False", refused.reason, refused.message)
    else:
        try:
            cron = parse(spec.schedule, spec.time_zone)
        except ScheduleError as error:
            accepted = ("False", error.reason, str(error))
    if cron is not None:
        slot = None if spec.suspend else due_slot(cron, schedule, now)
        if slot is not None:
            draft.fire(slot)
            last = slot
        upcoming = None if spec.suspend else cron.next_after(now)
    trigger = schedule.metadata.annotations.get(TRIGGER_ANNOTATION)
    if refused is not None:
        trigger = None  # NB: not even by hand: it stays unfired, and the trigger waits for a decision that accepts it
    if trigger and trigger != current.last_trigger:
        draft.trigger(trigger)

    kept = list(draft.tasks.values())
    delete = history.beyond_limits(kept, spec)
    status_, reason, message = accepted
    if status_ == "False" and not _already_rejected(schedule, reason, message):
        draft.notes.append(Note(reason, message, warning=True))
    conditions = set_condition(
        current.conditions,
        type=reasons.ACCEPTED,
        status=status_,
        reason=reason,
        message=message,
        now=now,
        observed_generation=schedule.metadata.generation,
    )
    active = history.active(kept)
    status = TaskScheduleStatus(
        last_schedule_time=last,
        next_schedule_time=upcoming,
        active=active,
        active_count=len(active),
        run_history=history.run_history(current.run_history, kept, draft.skipped, now, spec.max_run_history),
        last_trigger=trigger or current.last_trigger,
        observed_generation=schedule.metadata.generation,
        conditions=conditions,
    )
    return Plan(
        status=status,
        create=tuple(draft.create),
        cancel=tuple(draft.cancel),
        delete=tuple(delete),
        notes=tuple(draft.notes),
        wake_at=upcoming,
    )


def _already_rejected(schedule: TaskSchedule, reason: str, message: str) -> bool:
    condition = find_condition(schedule.status.conditions, reasons.ACCEPTED)
    return condition is not None and (condition.status, condition.reason, condition.message) == (
        "False",
        reason,
        message,
    )
