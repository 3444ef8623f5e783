"""Schedules an agent makes while its task runs (`set_schedule`): what one looks like, and whether it is within bounds.

Pure, and shared by both sides of the check: the worker's tool refuses what is out of bounds before writing anything
(the model reads why), and the controller decides the same from its caches before a schedule ever fires, since the
worker's word is not enough: the apiserver's admission policy holds the object's shape (source agent, the creator's
labels, the worker's own node, a template that is an agent task and nothing more), and this module the counts it
cannot see (maxSchedules, the interval, the parent task's phase, node, uid and queue).

The controller decides once per generation of a schedule (the Accepted condition records it, with the generation):
a schedule accepted while its task ran keeps firing after the task finished, a refused one never fires, and a change
to its spec is decided again (by then the task must be running, or in its review stage with the schedule made while
its work ran on the creator's node, so a person's edit of an agent-made schedule whose task is gone refuses it: copy
it as a schedule of your own instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from foreman.api.cron.expression import ScheduleError, parse
from foreman.api.cron.intervals import too_frequent
from foreman.api.lifecycle import reasons, subtasks
from foreman.api.models.agents import AgentSpec
from foreman.api.models.base import ObjectMeta, find_condition
from foreman.api.models.schedules import SCHEDULE_LABEL, Creator, TaskSchedule, TaskScheduleSpec, TaskTemplate
from foreman.api.models.subtasks import AGENT_EXECUTOR, CREATED_BY_AGENT, CREATED_BY_LABEL, PARENT_LABEL
from foreman.api.models.tasks import AgenticTask, AgenticTaskSpec, Payload


@dataclass(frozen=True)
class Refusal:
    reason: str
    """ScheduleLimitExceeded or InvalidParent: the reason of a tool error, and of the controller's condition."""
    message: str


def made_by(task: AgenticTask, node: str, *, name: str, schedule: str, time_zone: str, agent: str, prompt: str) -> (
    TaskSchedule
):  # fmt: skip
    """The TaskSchedule `set_schedule` writes for `task` on `node`: its tasks as `template_of` makes them, in the
    task's namespace, labelled with its maker."""
    template = template_of(task, agent=agent, prompt=prompt)
    creator = Creator(task=task.name, uid=task.metadata.uid or "", node=node)
    return TaskSchedule(
        metadata=ObjectMeta(
            name=name,
            namespace=task.namespace,
            labels={CREATED_BY_LABEL: CREATED_BY_AGENT, PARENT_LABEL: task.name},
        ),
        spec=TaskScheduleSpec(
            schedule=schedule,
            time_zone=time_zone,
            source="agent",
            created_by=creator,
            task_template=TaskTemplate(spec=template),
        ),
    )


def template_of(task: AgenticTask, *, agent: str, prompt: str) -> AgenticTaskSpec:
    """The spec of the tasks an agent-made schedule of `task` fires: an agent task for `agent` with `prompt`, in the
    task's queue, with its timeout and what it needs of a node (a task that must run confined makes schedules whose
    tasks must too)."""
    return AgenticTaskSpec(
        executor=AGENT_EXECUTOR,
        agent_ref=agent,
        payload=Payload(prompt=prompt),
        queue=task.spec.queue,
        timeout_seconds=task.spec.timeout_seconds,
        required_capability=task.spec.required_capability,
    )


def siblings_of(schedule: TaskSchedule, schedules: Sequence[TaskSchedule]) -> list[TaskSchedule]:
    """The agent-made schedules of the same task (its uid), itself included, oldest first (by creation, then name)."""
    creator = schedule.spec.created_by
    assert creator is not None
    same = [
        other
        for other in schedules
        if other.spec.source == "agent"
        and other.spec.created_by is not None
        and other.spec.created_by.uid == creator.uid
        and other.namespace == schedule.namespace
        and other.name != schedule.name
    ]
    return sorted([*same, schedule], key=_age)


def _age(schedule: TaskSchedule) -> tuple[datetime, str]:
    created = schedule.metadata.creation_timestamp
    return (created or datetime.max.replace(tzinfo=UTC)), schedule.name  # NB: one not yet made is the newest


def refusal(
    schedule: TaskSchedule,
    *,
    parent: AgenticTask | None,
    agent: AgentSpec | None,
    schedules: Sequence[TaskSchedule],
    fired_by_agent: bool,
    now: datetime,
) -> Refusal | None:
    """Why an agent-made schedule is out of bounds, or None.

    `parent`: the task named by its creator, in its namespace (None: none there); `agent`: that task's Agent;
    `schedules`: the namespace's schedules (its siblings are counted among them); `fired_by_agent`: the parent was
    itself fired by an agent-made schedule (whose tasks make no schedules, so schedules cannot breed)."""
    creator = schedule.spec.created_by
    if creator is None:
        return Refusal(reasons.INVALID_PARENT, "spec.createdBy: an agent-made schedule names the task that made it")
    if problem := _parent_problem(schedule, creator, parent):
        return Refusal(reasons.INVALID_PARENT, problem)
    assert parent is not None
    policy = agent.subtasks if agent is not None else None
    owner = parent.spec.agent_ref or "the built-in agent"
    if policy is None or policy.max_schedules == 0:
        return _exceeded(f"Agent {owner} allows its tasks no schedules (spec.subtasks.maxSchedules is 0)")
    if fired_by_agent:
        return _exceeded(f"task {parent.name} was fired by an agent-made schedule, and such tasks make no schedules")
    template = schedule.spec.task_template.spec
    allowed = sorted({*policy.agents, *([parent.spec.agent_ref] if parent.spec.agent_ref else [])})
    if template.executor != AGENT_EXECUTOR or template.agent_ref not in allowed:
        return _exceeded(
            f"agent {template.agent_ref!r} is not allowed: Agent {owner} lets its tasks schedule "
            + (", ".join(allowed) or "no Agent")
        )
    if template.queue != parent.spec.queue:
        return _exceeded(f"the schedule's tasks must run in its task's queue ({parent.spec.queue or 'its namespace'})")
    if template.timeout_seconds > parent.spec.timeout_seconds or template.retries > parent.spec.retries:
        return _exceeded("the schedule's tasks get at most its task's timeoutSeconds and retries")
    if beyond := _beyond_made(schedule, parent):
        return _exceeded(f"the schedule's tasks are what set_schedule makes of its task (its requiredCapability, an"
                         f" Agent and a prompt), not their own spec.{', spec.'.join(beyond)}")  # fmt: skip
    try:
        cron = parse(schedule.spec.schedule, schedule.spec.time_zone)
    except ScheduleError:
        return None  # NB: refused as any schedule is (InvalidSchedule, InvalidTimeZone), whatever made it
    minimum = policy.min_schedule_interval_seconds
    if (gap := too_frequent(cron, minimum, now)) is not None:
        return _exceeded(
            f"{schedule.spec.schedule!r} fires {gap.seconds:.0f} s apart (at {gap.first:%Y-%m-%d %H:%M} and"
            f" {gap.second:%H:%M} UTC); Agent {owner} allows one fire every {minimum} s at most"
            " (spec.subtasks.minScheduleIntervalSeconds)"
        )
    rank = [sibling.name for sibling in siblings_of(schedule, schedules)].index(schedule.name)
    if rank >= policy.max_schedules:
        return _exceeded(
            f"task {parent.name} has made {policy.max_schedules} schedules, the most its Agent {owner} allows"
            " (spec.subtasks.maxSchedules)"
        )
    return None


VARIES = frozenset({"agent_ref", "payload", "timeout_seconds", "retries"})
"""Fields of a schedule's task template that may differ from what `template_of` makes (its Agent checked against the
policy, its prompt free, its timeout and retries bounded by the task's); admission holds the payload to a prompt."""


def _beyond_made(schedule: TaskSchedule, parent: AgenticTask) -> list[str]:
    """The wire names of the template's spec fields that are not what `template_of` makes of `parent`: a capability of
    its own (a node of its choosing, no confinement), a kind, a priority."""
    template = schedule.spec.task_template.spec
    assert template.agent_ref is not None  # NB: refusal checked it against the policy first
    expected = template_of(parent, agent=template.agent_ref, prompt="")
    fields = type(template).model_fields
    return [fields[name].alias or name for name in fields if name not in VARIES and getattr(template, name) !=
            getattr(expected, name)]  # fmt: skip


def _exceeded(message: str) -> Refusal:
    return Refusal(reasons.SCHEDULE_LIMIT_EXCEEDED, message)


def _parent_problem(schedule: TaskSchedule, creator: Creator, parent: AgenticTask | None) -> str | None:
    where = f"task {creator.task} in namespace {schedule.namespace}"
    if schedule.metadata.labels.get(PARENT_LABEL) != creator.task:
        return f"label {PARENT_LABEL} must name the task in spec.createdBy ({creator.task})"
    if parent is None or parent.metadata.uid != creator.uid:
        return f"no {where} with uid {creator.uid}"
    # NB: in review, the schedule its work made is judged whenever the controller comes to it: the task is Pending
    # (or the reviewer's) by then, so the work's attempts say whether that node ran it when the schedule was created
    # (the reviewer's node, holding the task, does not: it is lent no fleet)
    created = schedule.metadata.creation_timestamp
    if not (subtasks.ran_on(parent, creator.node, created) if parent.reviewing else parent.held_node == creator.node):
        review = ", in review, its work not running there when this was made" if parent.reviewing else ""
        return f"{where} is not Scheduled or Running on node {creator.node} (it is {parent.phase}{review})"
    return None


def fired_by(task: AgenticTask, schedules: Sequence[TaskSchedule]) -> bool:
    """Whether the task was fired by an agent-made schedule of its namespace."""
    name = task.metadata.labels.get(SCHEDULE_LABEL)
    return any(s.name == name and s.namespace == task.namespace and s.spec.source == "agent" for s in schedules)


DECIDED = (reasons.SCHEDULE_ACCEPTED, reasons.SCHEDULE_LIMIT_EXCEEDED, reasons.INVALID_PARENT)


def decided(schedule: TaskSchedule) -> Refusal | Literal[False] | None:
    """What the controller decided of this generation of an agent-made schedule: None (accepted), its Refusal, or
    False when it has not decided yet."""
    condition = find_condition(schedule.status.conditions, reasons.ACCEPTED)
    if (
        condition is None
        or condition.observed_generation != schedule.metadata.generation
        or condition.reason not in DECIDED
    ):
        return False
    return None if condition.reason == reasons.SCHEDULE_ACCEPTED else Refusal(condition.reason, condition.message)
