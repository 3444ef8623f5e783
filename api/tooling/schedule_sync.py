"""Declarative TaskSchedules: a set kept in files (a Git repository) made true in the cluster, `kubectl apply --prune`
style, without ever touching a dynamic schedule (one a planner created through the SDK) or an agent-made one (a
running task's, `set_schedule`): forge's rule, LLM-made schedules kept apart from the file's.

Pure: the files' schedules and the cluster's in, what to create, update and prune out. `foreman schedule sync`
(cli/schedules.py) carries it out through `ForemanClient`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from foreman.api.models.base import key_of
from foreman.api.models.schedules import TaskSchedule


@dataclass(frozen=True)
class SyncPlan:
    create: list[TaskSchedule] = field(default_factory=list)
    update: list[TaskSchedule] = field(default_factory=list)
    unchanged: list[TaskSchedule] = field(default_factory=list)
    prune: list[TaskSchedule] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    """Names in the files that a dynamic or agent-made schedule already has: nothing is done while there are any."""


def in_sync(wanted: TaskSchedule, current: TaskSchedule) -> bool:
    """Same spec (defaults filled in on both sides) and the file's labels and annotations present."""
    meta = current.metadata
    return (
        wanted.spec == current.spec
        and wanted.metadata.labels.items() <= meta.labels.items()
        and wanted.metadata.annotations.items() <= meta.annotations.items()
    )


def plan_sync(wanted: Iterable[TaskSchedule], existing: Iterable[TaskSchedule], *, prune: bool) -> SyncPlan:
    """What makes the cluster's declarative schedules in the namespaces of `existing` equal to `wanted`."""
    plan = SyncPlan()
    current = {key_of(schedule): schedule for schedule in existing}
    wanted_keys = set()
    for schedule in wanted:
        key = key_of(schedule)
        wanted_keys.add(key)
        found = current.get(key)
        if found is None:
            plan.create.append(schedule)
        elif found.spec.source != "declarative":
            plan.conflicts.append(f"{key[0]}/{key[1]} exists as {_owned(found)}; not taking it over")
        elif in_sync(schedule, found):
            plan.unchanged.append(schedule)
        else:
            plan.update.append(schedule)
    if prune:
        plan.prune.extend(
            schedule
            for key, schedule in sorted(current.items())
            if key not in wanted_keys and schedule.spec.source == "declarative"
        )
    return plan


def _owned(schedule: TaskSchedule) -> str:
    if schedule.spec.source == "agent" and schedule.spec.created_by is not None:
        return f"an agent-made schedule (task {schedule.spec.created_by.task}'s)"
    return "a dynamic schedule (a planner's)"
