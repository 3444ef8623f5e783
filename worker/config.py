"""Worker settings: from a YAML file (`--config`), overridden by flags."""

from __future__ import annotations

import difflib
import shlex
import socket
from typing import Any

from pydantic import Field

from foreman.api.models.base import Model
from foreman.api.models.nodes import Accelerator


class CapabilityOverrides(Model):
    """Values that replace detected ones (reported as given), for hosts where detection cannot know better."""

    model_config = Model.model_config | {"extra": "forbid"}

    accelerator: Accelerator | None = None
    accelerator_count: int | None = Field(default=None, ge=0)
    total_ramgb: float | None = Field(default=None, ge=0)
    available_ramgb: float | None = Field(default=None, ge=0)
    model_memory_gb: float | None = Field(default=None, ge=0)
    """Memory the model server loads weights into (GB; detected: VRAM, 3/4 of a Mac's memory, a CPU node's RAM)."""


class WorkerConfig(Model):
    model_config = Model.model_config | {"extra": "forbid"}

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


class ConfigError(ValueError):
    """A worker config file that says something the worker would not do: one line, naming the key."""


FLAG_SPELLINGS: dict[str, str] = {
    "context_tokens": "max_context_tokens",
    "model": "installed_models",
    "label": "labels",
    "max_concurrent": "max_concurrent_tasks",
    "namespace": "namespaces",
    "role": "roles",
}
"""`foreman worker` flag names a config file may use for the setting they set."""
OVERRIDE_SPELLINGS = {"accelerator": "accelerator", "accelerator_count": "accelerator_count"}
FILE_ONLY = ("health_port",)
"""Keys of the file that are daemon options, not WorkerConfig fields."""


def from_file(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config file's settings as WorkerConfig fields, flag spellings (`ram_gb`, `label: [k=v]`, `model`,
    `llm_endpoint`, ...) accepted, and its daemon options (`health_port`) apart. Unknown keys are refused with the
    nearest valid one: a config whose `ram_gb` was silently dropped registered a GPU box as a 23.5 GB cpu node."""
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    overrides: dict[str, Any] = dict(document.get("overrides") or {})
    executors: dict[str, Any] = {name: dict(value or {}) for name, value in (document.get("executors") or {}).items()}
    fields = WorkerConfig.model_fields
    known = set(fields) | {field.alias for field in fields.values() if field.alias}
    for raw, value in document.items():
        key = str(raw).replace("-", "_")
        if key in ("overrides", "executors"):
            continue
        if key in FILE_ONLY:
            options[key] = value
        elif key in OVERRIDE_SPELLINGS:
            overrides[OVERRIDE_SPELLINGS[key]] = value
        elif key == "ram_gb":
            overrides["total_ramgb"] = overrides["available_ramgb"] = value
        elif key == "llm_endpoint":
            executors.setdefault("agent", {})["endpoint"] = value
        elif key == "command":
            executors.setdefault("command", {})["argv"] = shlex.split(value) if isinstance(value, str) else value
        elif key in FLAG_SPELLINGS:
            settings[FLAG_SPELLINGS[key]] = _listed(key, value)
        elif key in known:
            settings[key] = value
        else:
            offered = sorted({*known, *FLAG_SPELLINGS, *OVERRIDE_SPELLINGS, *FILE_ONLY, "ram_gb", "llm_endpoint",
                              "command", "overrides", "executors"})  # fmt: skip
            near = difflib.get_close_matches(key, offered, n=1)
            hint = f" (did you mean {near[0]}?)" if near else f"; valid: {', '.join(offered)}"
            raise ConfigError(f"unknown setting {raw!r}{hint}")
    return {**settings, "overrides": overrides, "executors": executors}, options


def _listed(key: str, value: Any) -> Any:
    """`label: [gpu=a100]` or `label: gpu=a100` as the mapping labels are; `model: qwen` as a list."""
    if key == "label":
        pairs = [value] if isinstance(value, str) else value
        if isinstance(pairs, dict):
            return pairs
        labels = {}
        for pair in pairs or []:
            name, sep, text = str(pair).partition("=")
            if not sep or not name:
                raise ConfigError(f"label wants key=value, got {pair!r}")
            labels[name] = text
        return labels
    if key in ("model", "namespace", "role") and isinstance(value, str):
        return [value]
    return value
