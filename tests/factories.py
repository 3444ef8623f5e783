"""Plain-data builders for tests: tasks and nodes as the API would return them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from foreman.api.lifecycle.status import claimed
from foreman.api.models.base import STORED
from foreman.api.models.nodes import FleetNode
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def running_agent_task(status: dict[str, Any] | None = None, **spec: Any) -> AgenticTask:
    """Agent task "t" as its worker claimed it on node n1, with further `status` fields (escalation, review)."""
    pending = task("t", phase="Scheduled", assignedNode="n1", executor="agent", **spec)
    wire = {**pending.status.to_wire(), **claimed(pending, T0, "n1/x"), "phase": "Running", **(status or {})}
    return AgenticTask.model_validate({**pending.to_wire(), "status": wire})


def task(name: str, *, phase: str = "Pending", namespace: str = "ns", labels: dict[str, str] | None = None,
         **spec: Any) -> AgenticTask:  # fmt: skip
    status: dict[str, Any] = {"phase": phase}
    kept = ("verdict", "assignedNode", "attempts", "notBefore", "failureReason", "startedAt", "finishedAt",
            "transcriptRef", "conditions", "attemptHistory", "deliveries")  # fmt: skip
    for key in kept:
        if key in spec:
            status[key] = spec.pop(key)
    return AgenticTask.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": "1",
                "creationTimestamp": T0,
                "uid": f"uid-{name}",
                "labels": labels or {},
            },
            "spec": {"kind": "verify", **spec},
            "status": status,
        },
        context=STORED,  # as read from the apiserver: a self-dependency is stored (older servers), not input
    )


def node(name: str, *, accelerator: str = "cpu", ram: float = 16, context: int = 8192, slots: int = 1,
         phase: str = "Ready", labels: dict[str, str] | None = None) -> FleetNode:  # fmt: skip
    return FleetNode.model_validate(
        {
            "metadata": {"name": name, "labels": labels or {}, "resourceVersion": "1"},
            "spec": {"maxConcurrentTasks": slots},
            "status": {
                "phase": phase,
                "capability": {
                    "accelerator": accelerator,
                    "availableRAMGB": ram,
                    "totalRAMGB": ram,
                    "maxContextTokens": context,
                },
            },
        }
    )


def schedule(name: str = "nightly", *, created: datetime = T0, status: dict[str, Any] | None = None,
             annotations: dict[str, str] | None = None, **spec: Any) -> TaskSchedule:  # fmt: skip
    """A TaskSchedule as read from the API (uid, generation, creationTimestamp set)."""
    return TaskSchedule.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": "u-1",
                "generation": 1,
                "resourceVersion": "1",
                "creationTimestamp": created,
                "annotations": annotations or {},
            },
            "spec": {"schedule": "0 3 * * *", "taskTemplate": {"spec": {"kind": "review"}}, **spec},
            "status": status or {},
        }
    )


def moved(before: AgenticTask, patch: dict[str, Any], version: int) -> AgenticTask:
    """The task after a status merge patch (a body from foreman.api.lifecycle.status), as the watch then delivers it."""
    body = before.to_wire()
    body["status"] = {**body.get("status", {}), **{k: v for k, v in patch.items() if v is not None}}
    body["metadata"]["resourceVersion"] = str(version)
    return AgenticTask.model_validate(body, context=STORED)
