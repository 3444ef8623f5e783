"""The declarative sync never deletes or rewrites what a planner or an agent made (forge's rule)."""

from __future__ import annotations

from typing import Any

from foreman.api.models.schedules import TaskSchedule
from foreman.api.tooling.schedule_sync import plan_sync

AGENT_MADE = {"source": "agent", "createdBy": {"task": "fixer", "uid": "u-1", "node": "gpu-box"}}


def schedule(name: str, expression: str = "@daily", **spec: Any) -> TaskSchedule:
    return TaskSchedule.model_validate(
        {
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"schedule": expression, "taskTemplate": {"spec": {"kind": "review"}}, **spec},
        }
    )


def test_prune_takes_only_declarative_schedules() -> None:
    existing = [schedule("old"), schedule("flaky-nightly", **AGENT_MADE), schedule("poll", source="dynamic")]
    plan = plan_sync([], existing, prune=True)
    assert [s.name for s in plan.prune] == ["old"]
    assert (plan.create, plan.update, plan.conflicts) == ([], [], [])


def test_a_file_naming_an_agent_made_schedule_changes_nothing_and_says_whose_it_is() -> None:
    existing = [schedule("flaky-nightly", "0 3 * * *", **AGENT_MADE), schedule("poll", source="dynamic")]
    plan = plan_sync([schedule("flaky-nightly", "@hourly"), schedule("poll")], existing, prune=True)
    assert plan.conflicts == [
        "team/flaky-nightly exists as an agent-made schedule (task fixer's); not taking it over",
        "team/poll exists as a dynamic schedule (a planner's); not taking it over",
    ]
    assert (plan.update, plan.prune, plan.create) == ([], [], [])


def test_declarative_schedules_are_created_updated_and_kept() -> None:
    existing = [schedule("same"), schedule("changed", "0 3 * * *")]
    plan = plan_sync([schedule("same"), schedule("changed", "0 4 * * *"), schedule("new")], existing, prune=True)
    assert [s.name for s in plan.unchanged] == ["same"]
    assert [s.name for s in plan.update] == ["changed"]
    assert [s.name for s in plan.create] == ["new"]
