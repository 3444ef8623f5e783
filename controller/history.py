"""A TaskSchedule's memory, rebuilt from its tasks each time (pure): run history, active tasks, what to delete.

Nothing here is kept in the controller's memory, so a restart loses nothing: a task carries its slot and trigger in
annotations, and records of tasks already deleted live on in the schedule's status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from foreman.api.lifecycle import reasons
from foreman.api.models.base import find_condition
from foreman.api.models.schedules import SCHEDULED_AT_ANNOTATION, TRIGGER_ANNOTATION, RunRecord, TaskScheduleSpec
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask

MESSAGE_LIMIT = 256
OLDEST = datetime.min.replace(tzinfo=UTC)


def scheduled_time(task: AgenticTask) -> datetime | None:
    """The slot a task was created for (its annotation; else when it was created)."""
    stamp = task.metadata.annotations.get(SCHEDULED_AT_ANNOTATION)
    if stamp:
        try:
            return datetime.fromisoformat(stamp)
        except ValueError:
            pass  # edited by hand: fall back on the creation time
    return task.metadata.creation_timestamp


def outcome_message(task: AgenticTask) -> str | None:
    """Why it failed, or what it found: what a person scanning the history wants to read."""
    finished = find_condition(task.status.conditions, reasons.FINISHED)
    if task.phase == "Failed" and finished is not None:
        text = f"{finished.reason}: {finished.message}" if finished.message else finished.reason
    elif task.status.result is not None and task.status.result.summary:
        text = task.status.result.summary
    else:
        return None
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def record_of(task: AgenticTask, fallback_time: datetime) -> RunRecord:
    return RunRecord(
        scheduled_time=scheduled_time(task) or fallback_time,
        task_name=task.name,
        trigger=task.metadata.annotations.get(TRIGGER_ANNOTATION),
        start_time=task.status.started_at,
        finish_time=task.status.finished_at,
        phase=task.phase,
        verdict=task.status.verdict,
        message=outcome_message(task),
    )


def run_history(
    previous: Sequence[RunRecord], tasks: Iterable[AgenticTask], skipped: Iterable[RunRecord], now: datetime, limit: int
) -> list[RunRecord]:
    """Newest first, at most `limit`: every task as it is now, records of deleted tasks as last seen, and skips."""
    by_task = {record.task_name: record for record in previous if record.task_name}
    for task in tasks:
        by_task[task.name] = record_of(task, now)
    skips = {record.scheduled_time: record for record in previous if not record.task_name}
    skips.update((record.scheduled_time, record) for record in skipped)
    records = [*by_task.values(), *skips.values()]
    records.sort(key=lambda record: (record.scheduled_time, record.task_name or ""), reverse=True)
    return records[:limit]


def active(tasks: Iterable[AgenticTask]) -> list[str]:
    return sorted(task.name for task in tasks if task.phase not in TERMINAL_PHASES)


def beyond_limits(tasks: Sequence[AgenticTask], spec: TaskScheduleSpec) -> list[str]:
    """Finished tasks past successfulTasksHistoryLimit / failedTasksHistoryLimit, oldest first out."""
    expired: list[str] = []
    for phase, keep in (
        ("Succeeded", spec.successful_tasks_history_limit),
        ("Failed", spec.failed_tasks_history_limit),
    ):
        finished = [task for task in tasks if task.phase == phase]
        finished.sort(key=lambda task: (scheduled_time(task) or OLDEST, task.name))
        expired += [task.name for task in finished[: max(0, len(finished) - keep)]]
    return sorted(expired)
