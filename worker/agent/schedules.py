"""`set_schedule`: a running task's agent makes (or changes) a TaskSchedule of its own, within its Agent's bounds.

Offered only when the task's Agent has `subtasks.maxSchedules` above 0. Every bound is checked here first, so the
model hears why (a tool error, nothing written): a cron the engine refuses, an unknown time zone, an Agent it may not
schedule, more schedules than maxSchedules, fires closer than minScheduleIntervalSeconds. None of that rests on this
check: the apiserver's admission policy refuses a schedule of the wrong shape from a worker's token, and the
controller decides the same bounds (foreman.api.lifecycle.agent_schedules) before the schedule ever fires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import structlog

from foreman.api.cron.expression import ScheduleError, parse
from foreman.api.http.errors import AlreadyExists, ApiError
from foreman.api.lifecycle import agent_schedules
from foreman.api.models.agents import AgentSpec
from foreman.api.models.schedules import NAME_LIMIT, SCHEDULE_LABEL, TaskSchedule
from foreman.api.models.subtasks import MAX_PROMPT
from foreman.api.models.tasks import AgenticTask
from foreman.worker.agent.errors import ToolError
from foreman.worker.children import Schedules
from foreman.worker.metrics import WorkerMetrics

log = structlog.get_logger("foreman.worker.agent.schedules")

NAME = "set_schedule"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DEFINITION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": NAME,
        "description": "Create a TaskSchedule that runs an agent task on a cron schedule after this task ends (e.g. "
        "re-run a flaky test nightly), or change one this task made. Its tasks run Agent `agent` with `prompt`, in "
        "this task's namespace and queue. Returns the schedule's next fires.",
        "parameters": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": f"The schedule's name: lower-case DNS label, at most "
                         f"{NAME_LIMIT} characters."},
                "schedule": {"type": "string", "description": "5-field cron (minute hour day-of-month month "
                             "day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly."},
                "timeZone": {"type": "string", "description": "IANA time zone the schedule is read in (default UTC)."},
                "agent": {"type": "string", "description": "The Agent its tasks run with."},
                "prompt": {"type": "string", "description": "What each of its tasks is asked to do."},
            },
            "required": ["name", "schedule", "agent", "prompt"],
        },
    },
}  # fmt: skip


@dataclass(frozen=True)
class ScheduleTool:
    """`set_schedule` for one running task: its schedules on the fleet, the task as claimed, its node and Agent."""

    fleet: Schedules
    task: AgenticTask
    node: str
    agent: AgentSpec
    metrics: WorkerMetrics | None = None

    async def call(self, arguments: dict[str, Any]) -> str:
        if wrong := argument_problem(arguments):
            raise self._refused(ToolError(f"bad arguments for {NAME}: {wrong}"), "BadArguments")
        try:
            answer, outcome = await self.set_schedule(**arguments)
        except Refused as error:
            raise self._refused(error, error.reason) from None
        except ToolError as error:
            raise self._refused(error, "Refused") from None
        self._count(outcome)
        return answer

    async def set_schedule(
        self,
        name: str,
        schedule: str,
        agent: str,
        prompt: str,
        timeZone: str = "UTC",  # NB: the API's name
    ) -> tuple[str, str]:
        for field, value in (("name", name), ("schedule", schedule), ("timeZone", timeZone), ("agent", agent),
                             ("prompt", prompt)):  # fmt: skip
            if not isinstance(value, str):
                raise ToolError(f"{field} must be a string")
        if len(name) > NAME_LIMIT or not _NAME.match(name):
            raise ToolError(f"name {name!r}: a lower-case DNS label of at most {NAME_LIMIT} characters ([a-z0-9-])")
        if not prompt.strip() or len(prompt) > MAX_PROMPT:
            raise ToolError(f"prompt: between 1 and {MAX_PROMPT} characters")
        try:
            cron = parse(schedule, timeZone)
        except ScheduleError as error:
            raise Refused(error.reason, str(error)) from None
        wanted = agent_schedules.made_by(
            self.task, self.node, name=name, schedule=schedule, time_zone=timeZone, agent=agent, prompt=prompt
        )
        namespace = self.task.namespace or ""
        try:
            existing = await self._existing(name)
            if existing is not None:
                meta = wanted.metadata.model_copy(update={"creation_timestamp": existing.metadata.creation_timestamp})
                wanted = wanted.model_copy(update={"metadata": meta})
            refused = agent_schedules.refusal(
                wanted, parent=self.task, agent=self.agent, schedules=await self.fleet.schedules(),
                now=self.fleet.now(), fired_by_agent=await self._fired_by_agent(),
            )  # fmt: skip
            if refused is not None:
                raise Refused(refused.reason, refused.message)
            if not await self.fleet.agent_exists(agent):
                raise ToolError(f"no Agent {agent!r} in namespace {namespace}")
            outcome = "updated" if existing is not None else "created"
            if existing is None:
                try:
                    await self.fleet.create_schedule(wanted)
                except AlreadyExists:
                    raise ToolError(f"a TaskSchedule {name!r} was made meanwhile; call {NAME} again") from None
            else:
                body = {"metadata": {"labels": wanted.metadata.labels}, "spec": wanted.spec.to_wire()}
                await self.fleet.patch_schedule(name, body)
        except ApiError as error:
            raise ToolError(f"the cluster refused the schedule: {error}") from None
        fires = ", ".join(f"{fire:%Y-%m-%d %H:%M %Z}" for fire in cron.upcoming(self.fleet.now(), 3))
        log.info("agent schedule set", task=self.task.name, namespace=namespace, schedule=name, outcome=outcome)
        return (
            f"taskschedule/{name} {outcome}: {schedule!r} in {timeZone}, Agent {agent}; next fires {fires} (the "
            "controller checks its bounds again before the first)",
            outcome,
        )

    async def _existing(self, name: str) -> TaskSchedule | None:
        if (found := await self.fleet.schedule(name)) is None:
            return None
        creator = found.spec.created_by
        if found.spec.source != "agent" or creator is None or creator.uid != self.task.metadata.uid:
            raise ToolError(f"a TaskSchedule {name!r} exists and this task did not make it: choose another name")
        return found

    async def _fired_by_agent(self) -> bool:
        if (fired_by := self.task.metadata.labels.get(SCHEDULE_LABEL)) is None:
            return False
        return (found := await self.fleet.schedule(fired_by)) is not None and found.spec.source == "agent"

    def _refused(self, error: ToolError, reason: str) -> ToolError:
        self._count("refused", reason)
        return error

    def _count(self, outcome: str, reason: str = "") -> None:
        if self.metrics is not None:
            self.metrics.agent_set_schedule.labels(outcome, reason).inc()


def argument_problem(arguments: dict[str, Any]) -> str | None:
    """What is wrong with the names of set_schedule's arguments (None: nothing), checked before the call: a
    TypeError from within it is a bug to see, not the model's mistake."""
    parameters = DEFINITION["function"]["parameters"]
    unknown = sorted(set(arguments) - set(parameters["properties"]))
    missing = [name for name in parameters["required"] if name not in arguments]
    said = [f"{what} {', '.join(names)}" for what, names in (("unknown", unknown), ("missing", missing)) if names]
    return "; ".join(said) or None


class Refused(ToolError):
    """A schedule out of bounds, with its reason (InvalidSchedule, ScheduleLimitExceeded, ...) for the metrics."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
