"""When a node can no longer be trusted with its tasks: pure rules for node liveness and claim expiry.

Liveness is judged by when the controller *observed* a new heartbeat, on its own clock, not by the timestamp the
worker wrote: a worker whose clock runs 30 s ahead or behind is then neither reclaimed early nor kept late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from foreman.api.lifecycle import reasons
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask


def heard_recently(observed_at: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    """Whether the controller saw a new heartbeat of the node within the staleness threshold."""
    return observed_at is not None and now - observed_at <= stale_after


def node_is_live(node: FleetNode | None, observed_at: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    """Ready, not asked to leave, and heard from within the staleness threshold: a node tasks may be placed on."""
    return (
        node is not None
        and node.status.phase == "Ready"
        and not node.spec.drain
        and heard_recently(observed_at, now, stale_after)
    )


def node_went_silent(node: FleetNode, observed_at: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    """A node still marked Ready or Draining whose heartbeat is stale: the controller marks it NotReady.

    NB: a draining worker keeps heartbeating until its drain is done and then marks its node Stopped; one that is
    still Draining and silent was killed mid-drain (a supervisor's stop timeout), and its tasks are lost.
    """
    return node.status.phase in ("Ready", "Draining") and not heard_recently(observed_at, now, stale_after)


@dataclass(frozen=True)
class Requeue:
    """Back to Pending. `expired` counts against the claim-expiry limit; a drain hand-back does not."""

    reason: str
    message: str
    expired: bool


@dataclass(frozen=True)
class GiveUp:
    reason: str
    message: str


def reclaim(task: AgenticTask, node: FleetNode | None, heard: bool, max_expiries: int) -> Requeue | GiveUp | None:
    """What to do with a Scheduled or Running task given its node and whether that node was heard from recently
    (None: leave it)."""
    if task.phase not in ("Scheduled", "Running"):
        return None
    where = task.status.assigned_node
    phase = node.status.phase if node is not None else None
    if task.phase == "Scheduled" and phase in ("Draining", "Stopped"):
        return Requeue(reasons.NODE_DRAINING, f"node {where} is {phase.lower()}; not started there", expired=False)
    if phase in ("Ready", "Draining") and heard:
        return None  # NB: a draining worker that is still heard finishes or hands back its running tasks itself
    why = (
        "was deleted"
        if node is None
        else f"is {phase or 'Unknown'}"
        if phase not in ("Ready", "Draining")
        else "stopped heartbeating"
    )
    if task.status.attempts + 1 >= max_expiries:
        return GiveUp(reasons.CLAIM_EXPIRY_LIMIT_REACHED, f"node {where} {why}; claim expired {max_expiries} times")
    return Requeue(reasons.NODE_LOST, f"node {where} {why}", expired=True)
