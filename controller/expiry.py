"""When a finished task is deleted (its time to live), as pure functions of plain data.

A task's own `spec.ttlSecondsAfterFinished` wins; else the controller's default for its outcome (`--ttl-after-success`,
`--ttl-after-failure`); neither: it is kept. The time counts from `status.finishedAt`, which every terminal write of
Foreman's sets. A task past its time is still kept while a dependant that is not finished names it in `dependsOn`:
deleting it would turn that dependant into DependencyNotFound (a reclaimed dependant goes back to Pending and checks
its upstreams again). The plan looks at such a task again when a dependant finishes. Nor is a task deleted while a
delivery of its result is outstanding (none recorded, or Pending: foreman.api.lifecycle.deliveries), for at most
`delivery_grace` past its time: the notifier's write of the outcome brings it back to the plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from foreman.api.lifecycle.deliveries import outstanding
from foreman.api.models.agents import AgentSpec
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask


@dataclass(frozen=True)
class TimeToLive:
    """The controller's defaults; None keeps tasks of that outcome (a task's own field still applies)."""

    after_success: timedelta | None = None
    after_failure: timedelta | None = None
    delivery_grace: timedelta = timedelta(hours=1)
    """How long past its time a task is kept for its outstanding deliveries (a notifier down, a receiver failing):
    the notifier's retries (8 tries, at most 5 minutes apart) end well within it."""

    def of(self, task: AgenticTask) -> timedelta | None:
        if task.spec.ttl_seconds_after_finished is not None:
            return timedelta(seconds=task.spec.ttl_seconds_after_finished)
        return self.after_success if task.phase == "Succeeded" else self.after_failure


@dataclass(frozen=True)
class Expire:
    """Delete it now (and what it owns)."""


@dataclass(frozen=True)
class ExpireAt:
    """Not yet: look again at `when`."""

    when: datetime


@dataclass(frozen=True)
class Needed:
    """Past its time, but kept for these dependants, which are not finished."""

    by: tuple[str, ...]


Expiry = Expire | ExpireAt | Needed


def expires_at(task: AgenticTask, ttl: TimeToLive) -> datetime | None:
    """When a finished task's time runs out; None while it runs, when it is kept, or when its status does not say
    when it finished (a status written by hand: keeping it is the safe side)."""
    if task.phase not in TERMINAL_PHASES or task.status.finished_at is None:
        return None
    keep = ttl.of(task)
    return None if keep is None else task.status.finished_at + keep


def expiry(
    task: AgenticTask,
    dependants: Iterable[AgenticTask],
    now: datetime,
    ttl: TimeToLive,
    *,
    agent: AgentSpec | None = None,
) -> Expiry | None:
    """What to do about a task's time to live now; None when it has none. `dependants`: the tasks naming it in
    `dependsOn`; `agent`: its Agent's spec (whose notify list may be the task's)."""
    when = expires_at(task, ttl)
    if when is None:
        return None
    if when > now:
        return ExpireAt(when)
    if now < when + ttl.delivery_grace and outstanding(task, agent):
        return ExpireAt(when + ttl.delivery_grace)
    waiting = tuple(sorted(d.name for d in dependants if d.phase not in TERMINAL_PHASES))
    return Needed(waiting) if waiting else Expire()
