"""TaskSchedule (foreman.dev/v1alpha1): AgenticTasks created on a cron schedule, as a CronJob creates Jobs."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from foreman.api.models.base import GROUP, Conditions, DnsName, Model, Resource, Rule
from foreman.api.models.envelope import Verdict
from foreman.api.models.tasks import AgenticTaskSpec

SCHEDULE_LABEL = f"{GROUP}/schedule"
"""On every task a schedule created: the schedule's name (so its name must be a valid label value, <= 63)."""
TRIGGER_ANNOTATION = f"{GROUP}/trigger"
"""Set on a TaskSchedule to fire it once now; each distinct value fires once (`foreman schedule trigger`)."""
SCHEDULED_AT_ANNOTATION = f"{GROUP}/scheduled-at"
"""On a created task: the slot it was created for (so history can be rebuilt from the tasks alone)."""

ON_TIME_SECONDS = 60
"""A fire noticed within this of its slot is on time; with catchUp Skip a later one is skipped."""
NAME_LIMIT = 63
"""Created task names are label values too (users select on them), so they keep to 63 characters."""

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]
CatchUp = Literal["Skip", "RunOnce"]
Source = Literal["declarative", "dynamic", "agent"]
RunPhase = Literal["Pending", "Scheduled", "Running", "Succeeded", "Failed", "Skipped"]
HistoryLimit = Annotated[int, Field(ge=0, le=100)]


class TemplateMeta(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class TaskTemplate(Model):
    metadata: TemplateMeta = TemplateMeta()
    spec: AgenticTaskSpec


class Creator(Model):
    """The task whose agent made a schedule (`set_schedule`): the apiserver's admission policy holds `node` to the
    worker that wrote it, the controller holds the task to Scheduled or Running there."""

    task: DnsName
    uid: str = Field(min_length=1, max_length=64)
    """The task's uid: a task deleted and made again under its name is another task."""
    node: str = Field(min_length=1, max_length=253)
    """The FleetNode the task ran on when its agent made the schedule."""


class TaskScheduleSpec(Model):
    schedule: str = Field(min_length=1, max_length=256)
    """5-field cron (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly."""
    time_zone: str = Field(default="UTC", max_length=64)
    """IANA time zone the schedule is read in (daylight saving handled as Vixie cron does: see README)."""
    suspend: bool = False
    """No fires while true; on resume a missed fire is treated as after an outage (catchUp, deadline)."""
    concurrency_policy: ConcurrencyPolicy = "Forbid"
    """A fire while an earlier task is unfinished: Allow runs both, Forbid skips the fire, Replace cancels the old."""
    starting_deadline_seconds: int | None = Field(default=None, ge=0)
    """A fire noticed later than this after its time is skipped."""
    catch_up: CatchUp = "RunOnce"
    """After downtime: RunOnce runs the latest missed fire once; Skip runs none (a fire more than 60 s late)."""
    max_run_history: int = Field(default=10, ge=1, le=100)
    successful_tasks_history_limit: HistoryLimit = 3
    """Succeeded tasks kept; older ones are deleted."""
    failed_tasks_history_limit: HistoryLimit = 1
    """Failed tasks kept; older ones are deleted."""
    source: Source = "declarative"
    """Who owns it: declarative (`foreman schedule sync` may update and prune it), dynamic (created by a planner
    through the SDK) or agent (made by a running task's agent with `set_schedule`); sync touches only declarative
    ones."""
    created_by: Creator | None = None
    """The task that made it, for source agent (required there)."""
    task_template: TaskTemplate

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.startingDeadlineSeconds) || !has(self.catchUp) || self.catchUp != 'Skip'"
            f" || self.startingDeadlineSeconds <= {ON_TIME_SECONDS}",
            message=f"spec.startingDeadlineSeconds: over {ON_TIME_SECONDS} has no effect with catchUp Skip (a fire "
            f"more than {ON_TIME_SECONDS} s late is skipped anyway)",
            holds=lambda spec: (
                not (
                    spec.catch_up == "Skip"
                    and spec.starting_deadline_seconds is not None
                    and spec.starting_deadline_seconds > ON_TIME_SECONDS
                )
            ),
        ),
        Rule(
            cel="!has(self.source) || self.source != 'agent' || has(self.createdBy)",
            message="spec.createdBy: an agent-made schedule (source agent) names the task that made it",
            holds=lambda spec: spec.source != "agent" or spec.created_by is not None,
        ),
    )


class RunRecord(Model):
    scheduled_time: datetime
    task_name: str | None = None
    trigger: str | None = None
    """The manual trigger id, for a fire asked for with `foreman schedule trigger`."""
    start_time: datetime | None = None
    finish_time: datetime | None = None
    phase: RunPhase = "Pending"
    verdict: Verdict | None = None
    message: str | None = None


class TaskScheduleStatus(Model):
    last_schedule_time: datetime | None = None
    """The latest slot dealt with (fired or skipped)."""
    next_schedule_time: datetime | None = None
    active: list[str] = Field(default_factory=list)
    """Unfinished tasks created by this schedule."""
    active_count: int = Field(default=0, ge=0)
    """How many `active` holds (for `kubectl get ts`: a printer column cannot count a list)."""
    run_history: list[RunRecord] = Field(default_factory=list)
    """Newest first, at most spec.maxRunHistory entries."""
    last_trigger: str | None = None
    """The last manual trigger id acted on."""
    observed_generation: int | None = None
    conditions: Conditions


class TaskSchedule(Resource):
    plural: ClassVar[str] = "taskschedules"
    singular: ClassVar[str] = "taskschedule"
    short_name: ClassVar[str] = "ts"
    namespaced: ClassVar[bool] = True
    max_name_length: ClassVar[int | None] = 63

    kind: Literal["TaskSchedule"] = "TaskSchedule"
    spec: TaskScheduleSpec
    status: TaskScheduleStatus = TaskScheduleStatus()


def bounded_name(prefix: str, suffix: str) -> str:
    """`prefix-suffix`, at most 63 characters: a long prefix is cut and a hash of it keeps names distinct."""
    name = f"{prefix}-{suffix}"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:6]
    keep = NAME_LIMIT - len(suffix) - len(digest) - 2
    return f"{prefix[:keep].rstrip('-.')}-{digest}-{suffix}"


def task_name(schedule: str, slot: datetime) -> str:
    """`<schedule>-<unix minute of the slot>`: the same slot always gives the same name."""
    return bounded_name(schedule, str(int(slot.timestamp()) // 60))


def manual_task_name(schedule: str, trigger: str) -> str:
    return bounded_name(schedule, "manual-" + hashlib.sha256(trigger.encode()).hexdigest()[:10])
