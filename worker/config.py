"""Worker settings: from a YAML file (`--config`), overridden by flags."""

from __future__ import annotations

import socket
from typing import Any

from pydantic import Field

from foreman.api.models.base import Model
from foreman.api.models.resources import Accelerator


class CapabilityOverrides(Model):
    """Values that replace detected ones (reported as given), for hosts where detection cannot know better."""

    accelerator: Accelerator | None = None
    accelerator_count: int | None = Field(default=None, ge=0)
    total_ramgb: float | None = Field(default=None, ge=0)
    available_ramgb: float | None = Field(default=None, ge=0)


class WorkerConfig(Model):
    node_name: str = Field(
        default_factory=lambda: socket.gethostname().lower(), pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    labels: dict[str, str] = Field(default_factory=dict)
    """FleetNode labels: what a task's nodeSelector matches."""
    roles: list[str] = Field(default_factory=list)
    max_concurrent_tasks: int = Field(default=1, ge=1)
    namespaces: list[str] = Field(default_factory=list)
    """Namespaces to take tasks from; empty means all."""
    max_context_tokens: int = Field(default=8192, ge=0)
    """Largest context the node's models take (cannot be detected)."""
    installed_models: list[str] = Field(default_factory=list)
    overrides: CapabilityOverrides = CapabilityOverrides()
    executors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-executor settings, e.g. {"command": {"argv": ["python3", "agent.py"]}}."""
    heartbeat_interval: float = Field(default=10.0, gt=0)
    drain_grace: float = Field(default=30.0, ge=0)
    poll_every: float = Field(default=30.0, gt=0)
    """Safety-net poll of this node's tasks, in case a watch event was lost."""
    retry_backoff: float = Field(default=5.0, ge=0)
    """First retry waits this long; each further one twice as long, capped at retry_backoff_max."""
    retry_backoff_max: float = Field(default=300.0, ge=0)
    degraded_after_failures: int = Field(default=3, ge=1)
    exit_after_degraded: float = Field(default=300.0, gt=0)
    """Seconds degraded (API unreachable) before the worker exits non-zero for its supervisor to restart it."""
    watch_timeout: int = Field(default=60, ge=1)
