"""When a node can no longer be trusted with its tasks: pure rules for node liveness and claim expiry.

Liveness is judged by when the controller *observed* a new heartbeat, on its own clock, not by the timestamp the
worker wrote: a worker whose clock runs 30 s ahead or behind is then neither reclaimed early nor kept late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from foreman.api import reasons
from foreman.api.resources import AgenticTask, FleetNode


def node_is_live(node: FleetNode | None, observed_at: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    """Ready and heard from within the staleness threshold."""
    return (
        node is not None
        and node.status.phase == "Ready"
        and observed_at is not None
        and now - observed_at <= stale_after
    )


def node_went_silent(node: FleetNode, observed_at: datetime | None, now: datetime, stale_after: timedelta) -> bool:
    """A node still marked Ready whose heartbeat is stale: the controller marks it NotReady."""
    return node.status.phase == "Ready" and (observed_at is None or now - observed_at > stale_after)


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


def reclaim(task: AgenticTask, node: FleetNode | None, node_live: bool, max_expiries: int) -> Requeue | GiveUp | None:
    """What to do with a Scheduled or Running task given the state of its node (None: leave it)."""
    if task.phase not in ("Scheduled", "Running"):
        return None
    where = task.status.assigned_node
    if node is not None and node.status.phase == "Draining":
        if task.phase == "Scheduled":
            return Requeue(reasons.NODE_DRAINING, f"node {where} is draining; not started there", expired=False)
        return None  # NB: a draining worker finishes or hands back its running tasks itself
    if node_live:
        return None
    why = (
        "was deleted"
        if node is None
        else f"is {node.status.phase or 'Unknown'}"
        if node.status.phase != "Ready"
        else "stopped heartbeating"
    )
    if task.status.attempts + 1 >= max_expiries:
        return GiveUp(reasons.CLAIM_EXPIRY_LIMIT_REACHED, f"node {where} {why}; claim expired {max_expiries} times")
    return Requeue(reasons.NODE_LOST, f"node {where} {why}", expired=True)
