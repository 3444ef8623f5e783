"""How a FleetNode moves, as status merge-patch bodies (pure): the worker's heartbeat (Ready, Draining, Stopped) and
the controller's NotReady for a silent node, the two writers of a node's status."""

from __future__ import annotations

import platform
from datetime import datetime
from typing import Any

from foreman.api import PACKAGE_VERSION
from foreman.api.lifecycle import reasons
from foreman.api.models.base import Condition, set_condition, wire_time
from foreman.api.models.nodes import FleetNode, NodeCapability, NodeIdentity, NodePhase

Inference = tuple[bool, str, str]
"""The model server's state for condition InferenceReady: (ready, reason, message)."""


def heartbeat(
    previous: list[Condition],
    *,
    phase: NodePhase,
    now: datetime,
    capability: NodeCapability,
    running: int,
    inference: Inference | None,
    identity: NodeIdentity | None = None,
    model_reports: Inference | None = None,
) -> dict[str, Any]:
    """The worker's heartbeat: its phase (Ready, Draining, Stopped) with condition Ready saying it, what it offers now,
    InferenceReady when the node has a model server (`inference` None: it has none), and ModelReportsValid where the
    worker had its models' sizes and loading to judge (`model_reports`, worker/loadwatch.py)."""
    ready = phase == "Ready"
    conditions = set_condition(
        previous,
        type=reasons.READY,
        status="True" if ready else "False",
        reason=reasons.WORKER_HEARTBEAT if ready else phase,
        now=now,
    )
    for kind, said in ((reasons.INFERENCE_READY, inference), (reasons.MODEL_REPORTS_VALID, model_reports)):
        if said is not None:
            good, reason, message = said
            conditions = set_condition(conditions, type=kind, status="True" if good else "False", reason=reason,
                                       message=message, now=now)  # fmt: skip
    return {
        "phase": phase,
        "lastHeartbeatTime": wire_time(now),
        "capability": capability.to_wire(),
        "runningTasks": running,
        "agentVersion": PACKAGE_VERSION,
        **({"identity": identity.to_wire()} if identity is not None else {}),
        "os": platform.system().lower(),
        "arch": platform.machine(),
        "conditions": [c.to_wire() for c in conditions],
    }


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
