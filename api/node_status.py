"""FleetNode status merge-patch bodies (pure: node and time in, dict out): the worker's heartbeat and the
controller's NotReady, the two writers of a node's status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from foreman.api import reasons
from foreman.api.base import set_condition
from foreman.api.resources import FleetNode


def not_ready(node: FleetNode, now: datetime, message: str) -> dict[str, Any]:
    """The controller gave up on a silent node: NotReady, its Ready condition saying why."""
    conditions = set_condition(
        node.status.conditions,
        type=reasons.READY,
        status="False",
        reason=reasons.HEARTBEAT_STALE,
        message=message,
        now=now,
    )
    return {"phase": "NotReady", "conditions": [c.to_wire() for c in conditions]}
