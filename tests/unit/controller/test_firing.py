"""The TaskSchedule plan as a pure function: when it fires, what it creates, skips, cancels, deletes and records."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from foreman.api.models.schedules import (
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
    TaskSchedule,
    bounded_name,
    manual_task_name,
    task_name,
)
from foreman.api.models.tasks import AgenticTask
from foreman.controller.firing import Plan, plan
from tests.factories import T0, schedule

SLOT = T0.replace(hour=3)  # "0 3 * * *" in UTC: 2026-01-01 03:00


def at(schedule_: TaskSchedule, moment: datetime, tasks: list[AgenticTask] | None = None) -> Plan:
    return plan(schedule_, tasks or [], moment)


def with_status(schedule_: TaskSchedule, result: Plan) -> TaskSchedule:
    """The schedule as the next pass reads it: the plan's status written."""
    return schedule_.model_copy(update={"status": result.status})


def ran(task: AgenticTask, phase: str, **status: Any) -> AgenticTask:
    body = task.model_dump(by_alias=True, mode="json")
    body["status"] = {**body["status"], "phase": phase, **status}
    return AgenticTask.model_validate(body)


# -- names ---------------------------------------------------------------------------------------------------------


def test_task_names_are_the_schedule_and_the_unix_minute() -> None:
    assert task_name("nightly", SLOT) == f"nightly-{int(SLOT.timestamp()) // 60}"
    assert task_name("nightly", SLOT + timedelta(seconds=59)) == task_name("nightly", SLOT)


@given(prefix=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True), other=st.integers(0, 9))
def test_names_fit_63_characters_and_stay_distinct(prefix: str, other: int) -> None:
    name = task_name(prefix, SLOT)
    assert len(name) <= 63
    assert name[0].isalnum()
    assert name[-1].isalnum()
    sibling = prefix[:-1] + str(other) if prefix[-1] != str(other) else prefix[:-1] + "x"
    assert task_name(sibling, SLOT) != name
    assert len(manual_task_name(prefix, "a" * 300)) <= 63


def test_long_names_keep_a_readable_start_and_the_slot() -> None:
    name = bounded_name("a" * 60, "29451420")
    assert name.startswith("a" * 40)
    assert name.endswith("-29451420")
    assert len(name) == 63


# -- firing ----------------------------------------------------------------------------------------------------------


def test_before_the_first_slot_nothing_fires_and_next_is_known() -> None:
    result = at(schedule(), SLOT - timedelta(minutes=1))
    assert result.create == ()
    assert result.status.next_schedule_time == SLOT
    assert result.wake_at == SLOT
    assert result.status.conditions[0].reason == "ScheduleAccepted"


def test_a_due_slot_creates_one_task_from_the_template() -> None:
    sched = schedule(taskTemplate={"metadata": {"labels": {"team": "a"}}, "spec": {"kind": "review", "priority": 5}})
    result = at(sched, SLOT + timedelta(seconds=2))
    (task,) = result.create
    assert task.name == task_name("nightly", SLOT)
    assert task.metadata.labels == {"team": "a", SCHEDULE_LABEL: "nightly"}
    assert task.metadata.annotations[SCHEDULED_AT_ANNOTATION] == "2026-01-01T03:00:00Z"
    assert task.metadata.owner_references[0].uid == "u-1"
    assert task.metadata.owner_references[0].controller is True
    assert task.spec.priority == 5
    assert result.status.last_schedule_time == SLOT
    assert result.status.next_schedule_time == SLOT + timedelta(days=1)
    assert (result.status.active, result.status.active_count) == ([task.name], 1)
    assert [(r.task_name, r.phase) for r in result.status.run_history] == [(task.name, "Pending")]


def test_a_slot_fires_once_across_passes_and_restarts() -> None:
    sched = schedule()
    first = at(sched, SLOT)
    # the status write was lost (or the controller restarted before it): the task exists, so no second one
    again = at(sched, SLOT + timedelta(seconds=30), list(first.create))
    assert again.create == ()
    assert again.status.last_schedule_time == SLOT
    # the status landed: the slot is dealt with
    later = at(with_status(sched, first), SLOT + timedelta(seconds=30), list(first.create))
    assert later.create == ()


def test_catch_up_run_once_fires_only_the_latest_missed_slot() -> None:
    sched = schedule(schedule="*/10 * * * *")
    outage_end = SLOT + timedelta(hours=2, minutes=5)
    result = at(sched, outage_end)
    (task,) = result.create
    assert task.name == task_name("nightly", SLOT + timedelta(hours=2))
    assert "catch-up" in result.notes[0].message
    assert at(with_status(sched, result), outage_end + timedelta(seconds=1), list(result.create)).create == ()


def test_catch_up_skip_runs_nothing_after_an_outage_but_fires_on_time() -> None:
    sched = schedule(catchUp="Skip")
    missed = at(sched, SLOT + timedelta(minutes=30))
    assert missed.create == ()
    assert missed.status.run_history[0].phase == "Skipped"
    assert "catchUp Skip" in (missed.status.run_history[0].message or "")
    assert missed.status.last_schedule_time == SLOT
    assert len(at(sched, SLOT + timedelta(seconds=20)).create) == 1
    # a generous deadline could not make Skip run late: the schedule is refused (the apiserver's CEL rule says the same)
    with pytest.raises(ValidationError, match="over 60 has no effect with catchUp Skip"):
        schedule(catchUp="Skip", startingDeadlineSeconds=3600)


def test_starting_deadline_skips_a_fire_noticed_too_late() -> None:
    sched = schedule(startingDeadlineSeconds=300)
    assert len(at(sched, SLOT + timedelta(seconds=299)).create) == 1
    late = at(sched, SLOT + timedelta(seconds=301))
    assert late.create == ()
    assert "startingDeadlineSeconds 300" in (late.status.run_history[0].message or "")
    assert late.notes[0].warning


def yesterdays(phase: str) -> AgenticTask:
    """The task of the slot a day before SLOT, in `phase`."""
    return ran(at(schedule(created=T0 - timedelta(days=2)), SLOT - timedelta(days=1)).create[0], phase)


def test_forbid_skips_while_a_task_is_active_and_says_so() -> None:
    sched = schedule()
    running = yesterdays("Running")
    result = at(sched, SLOT, [running])
    assert result.create == ()
    assert result.status.run_history[0].phase == "Skipped"
    assert result.status.run_history[0].message == f"{running.name} still active (concurrencyPolicy Forbid)"
    assert result.status.active == [running.name]
    finished = ran(running, "Succeeded", verdict="GO")
    assert len(at(sched, SLOT, [finished]).create) == 1


def test_allow_runs_beside_and_replace_cancels_the_active_task() -> None:
    old = yesterdays("Running")
    allow = at(schedule(concurrencyPolicy="Allow"), SLOT, [old])
    assert len(allow.create) == 1
    assert allow.cancel == ()
    replace = at(schedule(concurrencyPolicy="Replace"), SLOT, [old])
    assert len(replace.create) == 1
    assert replace.cancel == (old.name,)
    already = old.model_copy(update={"spec": old.spec.model_copy(update={"cancel": True})})
    assert at(schedule(concurrencyPolicy="Replace"), SLOT, [already]).cancel == ()


def test_suspend_fires_nothing_and_resume_is_treated_like_an_outage() -> None:
    suspended = at(schedule(suspend=True), SLOT + timedelta(hours=5))
    assert suspended.create == ()
    assert suspended.status.next_schedule_time is None
    assert suspended.wake_at is None
    resumed = at(schedule(), SLOT + timedelta(hours=5))
    assert len(resumed.create) == 1
    assert len(at(schedule(catchUp="Skip"), SLOT + timedelta(hours=5)).create) == 0


def test_a_rejected_schedule_says_why_once_and_fires_nothing() -> None:
    for expression, zone, reason in [
        ("0 3 * *", "UTC", "InvalidSchedule"),
        ("0 0 30 2 *", "UTC", "ImpossibleSchedule"),
        ("0 3 * * *", "Mars/Base", "InvalidTimeZone"),
    ]:
        sched = schedule(schedule=expression, timeZone=zone)
        result = at(sched, SLOT + timedelta(days=3))
        accepted = result.status.conditions[0]
        assert (accepted.status, accepted.reason) == ("False", reason)
        assert result.create == ()
        assert result.wake_at is None
        assert [note.reason for note in result.notes] == [reason]
        assert at(with_status(sched, result), SLOT + timedelta(days=4)).notes == ()


def test_a_stored_equal_range_fires_at_the_corrected_times_after_an_upgrade() -> None:
    """Issue 16: croniter fired `0 3-3 * * *` every hour; the stored status says it last fired at 14:00. After the
    upgrade nothing is due until 03:00 tomorrow, and then one task."""
    stored = schedule(schedule="0 3-3 * * *", status={"lastScheduleTime": T0.replace(hour=14).isoformat()})
    afternoon = at(stored, T0.replace(hour=15, minute=30))
    assert afternoon.create == ()
    assert afternoon.status.next_schedule_time == SLOT + timedelta(days=1)
    assert len(at(with_status(stored, afternoon), SLOT + timedelta(days=1)).create) == 1


def test_a_slot_the_old_reading_skipped_is_a_missed_one_after_an_upgrade() -> None:
    """`1,*` beside Mondays now means every day (the union), not Mondays only: today's midnight slot, after the last
    Monday fire, is missed as in an outage, and catchUp decides (RunOnce runs it late once, Skip records it)."""
    monday = {"lastScheduleTime": (T0 - timedelta(days=3)).isoformat()}  # T0 is Thursday 1 January 2026
    run_once = at(schedule(schedule="0 0 1,* * mon", status=monday), T0.replace(hour=10))
    assert [task.name for task in run_once.create] == [task_name("nightly", T0)]
    assert run_once.status.next_schedule_time == T0 + timedelta(days=1)
    skip = at(schedule(schedule="0 0 1,* * mon", status=monday, catchUp="Skip"), T0.replace(hour=10))
    assert skip.create == ()
    assert skip.status.run_history[0].phase == "Skipped"


def test_manual_trigger_fires_once_per_id_even_when_suspended() -> None:
    sched = schedule(suspend=True, annotations={"foreman.dev/trigger": "run-1"})
    now = SLOT + timedelta(hours=1, seconds=7)
    first = at(sched, now)
    (task,) = first.create
    assert task.name == manual_task_name("nightly", "run-1")
    assert task.metadata.annotations["foreman.dev/trigger"] == "run-1"
    assert first.status.last_trigger == "run-1"
    assert first.status.run_history[0].trigger == "run-1"
    assert at(with_status(sched, first), now, list(first.create)).create == ()
    assert at(with_status(sched, first), now).create == ()  # even once its task is gone
    other = sched.model_copy(update={"metadata": sched.metadata.model_copy(update={"annotations": {
        "foreman.dev/trigger": "run-2"}})})  # fmt: skip
    assert len(at(with_status(other, first), now).create) == 1


# -- history and retention -------------------------------------------------------------------------------------------


def finished_runs(count: int, phase: str) -> list[AgenticTask]:
    sched = schedule(schedule="0 * * * *")
    runs = []
    for hour in range(count):
        slot = T0 + timedelta(hours=hour + 1)
        task = at(sched, slot).create[0]
        runs.append(ran(task, phase, verdict="GO" if phase == "Succeeded" else "INCOMPLETE"))
    return runs


def test_history_limits_delete_the_oldest_finished_tasks() -> None:
    succeeded, failed = finished_runs(5, "Succeeded"), finished_runs(3, "Failed")
    failed = [t.model_copy(update={"metadata": t.metadata.model_copy(update={"name": t.name + "-f"})}) for t in failed]
    sched = schedule(schedule="0 * * * *", successfulTasksHistoryLimit=3, failedTasksHistoryLimit=1)
    result = at(sched, T0 + timedelta(hours=5, minutes=30), [*succeeded, *failed])
    assert set(result.delete) == {succeeded[0].name, succeeded[1].name, failed[0].name, failed[1].name}


def test_run_history_is_newest_first_capped_and_outlives_deleted_tasks() -> None:
    runs = finished_runs(6, "Succeeded")
    sched = schedule(schedule="0 * * * *", maxRunHistory=4)
    result = at(sched, T0 + timedelta(hours=6, minutes=30), runs)
    names = [record.task_name for record in result.status.run_history]
    assert names == [run.name for run in reversed(runs)][:4]
    assert {record.phase for record in result.status.run_history} == {"Succeeded"}
    # the tasks are deleted: their records stay as last seen
    after = at(with_status(sched, result), T0 + timedelta(hours=6, minutes=31), [])
    assert after.status.run_history == result.status.run_history
    assert after.status.active == []


def test_history_follows_a_task_through_its_phases() -> None:
    sched = schedule()
    fired = at(sched, SLOT)
    task = fired.create[0]
    status = {"startedAt": "2026-01-01T03:00:05Z", "finishedAt": "2026-01-01T03:01:00Z", "verdict": "GO"}
    done = ran(task, "Succeeded", result={"kind": "review", "verdict": "GO", "summary": "all good"}, **status)
    record = at(with_status(sched, fired), SLOT + timedelta(minutes=2), [done]).status.run_history[0]
    assert (record.phase, record.verdict, record.message) == ("Succeeded", "GO", "all good")
    assert record.start_time is not None
    assert record.finish_time is not None
