"""The bounds of agent-made schedules, decided as the tool and the controller both decide them (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from foreman.api.lifecycle import agent_schedules, reasons
from foreman.api.lifecycle.agent_schedules import made_by, refusal
from foreman.api.models.agents import AgentSpec
from foreman.api.models.base import set_condition
from foreman.api.models.schedules import SCHEDULE_LABEL, TaskSchedule
from foreman.api.models.tasks import AgenticTask, RequiredCapability
from foreman.controller.firing import plan

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
AGENT = AgentSpec.model_validate({"subtasks": {"agents": ["tester"], "maxSchedules": 2}})


def parent(**status: Any) -> AgenticTask:
    return AgenticTask.model_validate(
        {
            "metadata": {"name": "fixer", "namespace": "team", "uid": "u-1", "labels": {}},
            "spec": {"executor": "agent", "agentRef": "coder", "queue": "nightly"},
            "status": {"phase": "Running", "assignedNode": "gpu-box", **status},
        }
    )


def schedule(name: str = "flaky", expression: str = "0 3 * * *", agent: str = "tester", **made: Any) -> TaskSchedule:
    made = {"time_zone": "UTC", "prompt": "re-run the flaky test", **made}
    return made_by(parent(), "gpu-box", name=name, schedule=expression, agent=agent, **made)


def refused(
    made: TaskSchedule,
    *,
    task: AgenticTask | None = None,
    siblings: tuple[TaskSchedule, ...] = (),
    agent: AgentSpec | None = AGENT,
    fired_by_agent: bool = False,
) -> agent_schedules.Refusal | None:
    return refusal(
        made, parent=task or parent(), agent=agent, schedules=[*siblings, made], fired_by_agent=fired_by_agent, now=NOW
    )


def test_what_set_schedule_makes_is_an_agent_task_in_the_parents_namespace_and_queue() -> None:
    made = schedule()
    assert made.namespace == "team"
    assert made.metadata.labels == {"foreman.dev/created-by": "agent", "foreman.dev/parent": "fixer"}
    assert (made.spec.source, made.spec.created_by and made.spec.created_by.to_wire()) == (
        "agent",
        {"task": "fixer", "uid": "u-1", "node": "gpu-box"},
    )
    template = made.spec.task_template.spec
    assert (template.executor, template.agent_ref, template.payload.prompt, template.queue) == (
        "agent", "tester", "re-run the flaky test", "nightly",
    )  # fmt: skip
    assert refused(made) is None
    assert refused(schedule(agent="coder")) is None  # its own Agent


def older(name: str, minutes: int) -> TaskSchedule:
    made = schedule(name)
    meta = made.metadata.model_copy(update={"creation_timestamp": NOW - timedelta(minutes=minutes)})
    return made.model_copy(update={"metadata": meta})


@pytest.mark.parametrize(
    ("made", "kwargs", "reason", "says"),
    [
        (schedule(agent="admin"), {}, "ScheduleLimitExceeded", "agent 'admin' is not allowed"),
        (schedule(expression="* * * * *"), {}, "ScheduleLimitExceeded", "fires 60 s apart"),
        (schedule(expression="30 * * * *"), {}, None, ""),  # hourly: the default bound
        (schedule(), {"siblings": (older("a", 2), older("b", 1))}, "ScheduleLimitExceeded", "has made 2 schedules"),
        (schedule(), {"agent": None}, "ScheduleLimitExceeded", "allows its tasks no schedules"),
        (schedule(), {"fired_by_agent": True}, "ScheduleLimitExceeded", "make no schedules"),
        (schedule(), {"task": parent(phase="Succeeded")}, "InvalidParent", "not Scheduled or Running"),
        (schedule(), {"task": parent(assignedNode="other")}, "InvalidParent", "on node gpu-box"),
    ],
)
def test_out_of_bounds(made: TaskSchedule, kwargs: dict[str, Any], reason: str | None, says: str) -> None:
    found = refused(made, **kwargs)
    assert (found and found.reason) == reason
    assert says in (found.message if found else "")


def templated(**spec: Any) -> TaskSchedule:
    """A schedule as set_schedule makes it, its tasks' spec changed as a worker could write it."""
    made = schedule()
    template = made.spec.task_template.spec.model_copy(update=spec)
    task_template = made.spec.task_template.model_copy(update={"spec": template})
    return made.model_copy(update={"spec": made.spec.model_copy(update={"task_template": task_template})})


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"timeout_seconds": 7 * 24 * 3600}, "at most its task's timeoutSeconds and retries"),
        ({"retries": 100, "timeout_seconds": 60}, "at most its task's timeoutSeconds and retries"),
        ({"required_capability": RequiredCapability(node_selector={"gpu": "h100"})}, "spec.requiredCapability"),
        ({"kind": "review"}, "spec.kind"),
    ],
)
def test_a_schedules_tasks_get_no_more_than_its_task(spec: dict[str, Any], says: str) -> None:
    """Their timeout, retries and node are their task's at most: a schedule is no way to outlast or outplace it."""
    found = refused(templated(**spec))
    assert found is not None
    assert found.reason == reasons.SCHEDULE_LIMIT_EXCEEDED
    assert says in found.message


def test_a_task_that_must_run_confined_makes_schedules_whose_tasks_must_too() -> None:
    confined = parent().model_copy(update={"spec": parent().spec.model_copy(update={
        "required_capability": RequiredCapability(sandbox=True), "timeout_seconds": 600})})  # fmt: skip
    made = made_by(confined, "gpu-box", name="n", schedule="0 3 * * *", time_zone="UTC", agent="tester", prompt="p")
    template = made.spec.task_template.spec
    assert (template.required_capability.sandbox, template.timeout_seconds) == (True, 600)
    assert refused(made, task=confined) is None
    assert refused(schedule(), task=confined) is not None  # its tasks would run unconfined, for 45 minutes


def test_a_forged_parent_and_another_namespace_are_invalid_parents() -> None:
    made = schedule()
    other = parent().model_copy(update={"metadata": parent().metadata.model_copy(update={"uid": "u-2"})})
    assert (found := refusal(made, parent=other, agent=AGENT, schedules=[made], fired_by_agent=False, now=NOW))
    assert (found.reason, found.message) == ("InvalidParent", "no task fixer in namespace team with uid u-1")
    relabelled = made.model_copy(update={"metadata": made.metadata.model_copy(update={"labels": {}})})
    assert (found := refused(relabelled))
    assert found.reason == "InvalidParent"
    assert refusal(made, parent=None, agent=AGENT, schedules=[made], fired_by_agent=False, now=NOW) is not None


def test_the_oldest_schedules_are_the_ones_within_max_schedules() -> None:
    first, second, third = older("a", 3), older("b", 2), older("c", 1)
    assert [refused(s, siblings=(first, second, third)) is None for s in (first, second, third)] == [True, True, False]


def test_tasks_an_agent_made_schedule_fired_make_none() -> None:
    fired = parent().model_copy(
        update={"metadata": parent().metadata.model_copy(update={"labels": {SCHEDULE_LABEL: "flaky"}})}
    )
    assert agent_schedules.fired_by(fired, [schedule("flaky")])
    assert not agent_schedules.fired_by(fired, [schedule("other")])


def test_the_controller_decides_once_per_generation_and_a_refused_schedule_never_fires() -> None:
    made = schedule(expression="* * * * *")
    meta = made.metadata.model_copy(update={"generation": 1, "creation_timestamp": NOW - timedelta(hours=1)})
    made = made.model_copy(update={"metadata": meta})
    assert agent_schedules.decided(made) is False
    no = refused(made)
    assert no is not None
    result = plan(made, [], NOW, no)
    assert (result.create, result.wake_at, result.status.next_schedule_time) == ((), None, None)
    (condition,) = result.status.conditions
    assert (condition.status, condition.reason) == ("False", reasons.SCHEDULE_LIMIT_EXCEEDED)
    written = made.model_copy(update={"status": result.status})
    assert agent_schedules.decided(written) == no
    accepted = set_condition([], type=reasons.ACCEPTED, status="True", reason=reasons.SCHEDULE_ACCEPTED, now=NOW,
                             observed_generation=1)  # fmt: skip
    kept = made.model_copy(update={"status": made.status.model_copy(update={"conditions": accepted})})
    assert agent_schedules.decided(kept) is None
    bumped = kept.model_copy(update={"metadata": kept.metadata.model_copy(update={"generation": 2})})
    assert agent_schedules.decided(bumped) is False


def made_at(created: datetime, node: str = "gpu-box") -> TaskSchedule:
    """A schedule as `node`'s worker makes it for the task, created (by the apiserver's clock) at `created`."""
    made = made_by(parent(), node, name="flaky", schedule="0 3 * * *", time_zone="UTC", agent="tester", prompt="p")
    return made.model_copy(update={"metadata": made.metadata.model_copy(update={"creation_timestamp": created})})


def work_then(began: datetime, ended: datetime, *, review: bool = True, **now: Any) -> AgenticTask:
    """The task after its work ran on gpu-box from `began` to `ended`: Pending for its reviewer (`review`), or for a
    retry; `now`: its status since (the reviewer's attempt, placed)."""
    work = {"number": 1, "node": "gpu-box", "startedAt": began.isoformat(), "finishedAt": ended.isoformat()}
    stage = {"review": {"agentRef": "reviewer", "workAttempts": [work]}} if review else {}
    status = {"phase": "Pending", "assignedNode": None, **stage, **now}
    status["attemptHistory"] = [work, *status.get("attemptHistory", [])]
    return parent(**status)


def test_a_schedule_its_work_made_is_accepted_when_judged_after_the_task_went_to_its_review() -> None:
    """set_schedule is often the work's last act: the task is Pending for its reviewer before the controller comes
    to the schedule, which the work made while it ran on the creator's node."""
    made = made_at(NOW)
    assert refused(made, task=work_then(NOW - timedelta(minutes=5), NOW + timedelta(seconds=2))) is None
    reviewer = {"number": 2, "node": "other", "startedAt": (NOW + timedelta(minutes=1)).isoformat()}
    placed = work_then(NOW - timedelta(minutes=5), NOW + timedelta(seconds=2), phase="Running", assignedNode="other",
                       attemptHistory=[reviewer])  # fmt: skip
    assert refused(made, task=placed) is None  # its reviewer runs on another node now


def test_the_node_that_runs_a_tasks_review_makes_no_schedule_for_it() -> None:
    """The reviewer is lent no fleet: a hostile one that holds the task, or has ended it, forges none for it."""
    reviewer = {"number": 2, "node": "other", "startedAt": (NOW - timedelta(seconds=30)).isoformat()}
    held = work_then(NOW - timedelta(minutes=10), NOW - timedelta(minutes=1), phase="Running", assignedNode="other",
                     attemptHistory=[reviewer])  # fmt: skip
    ended = work_then(NOW - timedelta(minutes=10), NOW - timedelta(minutes=1), phase="Succeeded", assignedNode="other",
                      finishedAt=(NOW + timedelta(minutes=1)).isoformat(), attemptHistory=[reviewer])  # fmt: skip
    for task in (held, ended):
        found = refused(made_at(NOW, node="other"), task=task)
        assert found is not None
        assert found.reason == reasons.INVALID_PARENT
        assert "in review, its work not running there" in found.message


@pytest.mark.parametrize(
    ("made", "task", "says"),
    [
        # the hostile case: a worker that does not run the task forges a schedule for it while it is in review
        (made_at(NOW, node="intruder"), work_then(NOW - timedelta(minutes=5), NOW + timedelta(minutes=5)),
         "on node intruder (it is Pending, in review"),
        # the node that did the work, making one after its work ended
        (made_at(NOW), work_then(NOW - timedelta(minutes=10), NOW - timedelta(minutes=5)), "in review"),
        # Pending for any other reason than its review (a retry): refused as before
        (made_at(NOW), work_then(NOW - timedelta(minutes=5), NOW + timedelta(seconds=2), review=False),
         "not Scheduled or Running on node gpu-box (it is Pending)"),
        (made_at(NOW), parent(phase="Pending", assignedNode=None), "(it is Pending)"),
    ],
)  # fmt: skip
def test_a_task_in_review_is_no_parent_of_a_schedule_its_work_did_not_make(
    made: TaskSchedule, task: AgenticTask, says: str
) -> None:
    found = refused(made, task=task)
    assert found is not None
    assert found.reason == reasons.INVALID_PARENT
    assert says in found.message
