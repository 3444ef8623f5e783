"""coordination.k8s.io/v1 Lease, the part leader election reads and writes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from foreman.api.models.base import Model, ObjectMeta


class LeaseSpec(Model):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    lease_transitions: int | None = None


class Lease(Model):
    api_version: Literal["coordination.k8s.io/v1"] = "coordination.k8s.io/v1"
    kind: Literal["Lease"] = "Lease"
    metadata: ObjectMeta
    spec: LeaseSpec = LeaseSpec()
