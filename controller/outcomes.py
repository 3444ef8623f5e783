"""What a finished task tells the controller's outcome metrics, as a pure function of the task before and after.

Counted when the controller sees a task finish, not read back from the API later: a finished task is deleted by its
TTL, and what the metrics counted stays counted. Once per task:
- only on a transition the cache observes (absent or unfinished before, Succeeded or Failed now): later writes of
  a finished task (labels, a relist after a watch gap) are no transition;
- only for tasks that finished at or after this controller started (`since`): a restart relists every finished
  task as new, and counting them again would inflate every counter at each restart. What finished while no
  controller ran is not counted by anyone (the one loss; a standby that took over saw it as a transition);
- only by the leader (the loop's check): two replicas counting the same task would double every sum.

`kind` is the task's `spec.kind` (issue-fix, verify, review, freeform): what work was asked, a closed set the
result envelope reports back. The executor is how the work ran, a plug-in name chosen per node, and is not a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from foreman.api.lifecycle import reasons
from foreman.api.models.base import find_condition
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask


@dataclass(frozen=True)
class Outcome:
    """One finished task, as the metrics count it."""

    namespace: str
    queue: str
    kind: str
    verdict: str
    """The envelope's verdict; "" when the task ended without one."""
    outcome: str
    """Succeeded, or why it failed (its failureReason: Timeout, Cancelled, UpstreamFailed, ...)."""
    duration: float | None
    """Seconds from creation to finish."""
    queue_wait: float | None
    """Seconds from creation to the (last) placement; None for a task that never held a node (cancelled or failed
    while Pending)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


def outcome(old: AgenticTask | None, new: AgenticTask, *, since: datetime, queue: str) -> Outcome | None:
    """The outcome to count for this change of a task, or None when it is not a finish to count (see the module).
    `queue`: the task's queue (`Cache.queue_of`)."""
    if new.phase not in TERMINAL_PHASES or (old is not None and old.phase in TERMINAL_PHASES):
        return None
    finished = new.status.finished_at
    if finished is None or finished < since:
        return None
    created = new.metadata.creation_timestamp
    placed = find_condition(new.status.conditions, reasons.SCHEDULED)
    usage = new.status.usage
    return Outcome(
        namespace=new.namespace or "",
        queue=queue,
        kind=new.spec.kind,
        verdict=new.status.verdict or "",
        outcome="Succeeded" if new.phase == "Succeeded" else new.status.failure_reason or "Failed",
        duration=_seconds(created, finished),
        queue_wait=_seconds(created, placed.last_transition_time) if placed and placed.status == "True" else None,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )


def _seconds(start: datetime | None, end: datetime) -> float | None:
    return None if start is None else max(0.0, (end - start).total_seconds())
