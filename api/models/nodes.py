"""FleetNode (foreman.dev/v1alpha1): a host that runs tasks, as its worker advertises it; the single source of truth
for its CRD schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, ModelWrapValidatorHandler, PrivateAttr, model_validator

from foreman.api.models.base import Conditions, Model, Resource

Accelerator = Literal["cuda", "metal", "rocm", "cpu"]
AcceleratorRequest = Literal["cuda", "metal", "rocm", "cpu", "any"]
NodePhase = Literal["Ready", "Draining", "Stopped", "NotReady", "Unknown"]


class FleetNodeSpec(Model):
    node_name: str | None = None
    """Host name of the machine the worker runs on."""
    roles: list[str] = Field(default_factory=list)
    max_concurrent_tasks: int = Field(default=1, ge=1, le=1024)
    drain: bool = False
    """Asked to leave (`foreman node leave`): nothing new is placed here, and the worker drains as on SIGTERM (its
    running tasks finish within the grace period or go back to Pending), marks the node Stopped and exits."""


class ModelOffer(Model):
    """A model the node's inference server serves, as the worker discovered it."""

    name: str = Field(min_length=1, max_length=253)
    """The name the server lists it under (what the agent executor sends)."""
    aliases: list[str] = Field(default_factory=list)
    """Other names tasks may use for it (the worker's `modelAliases`): placement matches these too."""
    context_tokens: int | None = Field(default=None, ge=0)
    """Its context window, where the server says (vLLM max_model_len, llama.cpp n_ctx, Ollama context_length)."""
    loaded: bool | None = None
    """In memory now, where the server says (Ollama /api/ps, LM Studio state)."""
    tokens_per_second: float | None = Field(default=None, ge=0)
    """Generation speed measured by the agent executor on this node (moving average of completion tokens per
    second of streaming); none until it has run a task with the model."""
    size_gb: float | None = Field(default=None, ge=0)
    """Memory it takes when loaded (GB), where the server says (Ollama's size_vram, the weights' size)."""
    load_seconds: float | None = Field(default=None, ge=0)
    """How long loading it takes on this node: measured by the worker when it saw the model go from not loaded to
    loaded, else estimated from its size; placement counts it as the cost of a cold start here."""


class EnforcedLimit(Model):
    """One limit on every command an agent runs on the node, as really enforced there."""

    name: Literal["wallTime", "cpu", "memory", "processes", "fileSize", "openFiles"]
    value: str
    by: Literal["timeout", "cgroup", "rlimit"]


class NodeSandbox(Model):
    """How the node confines the commands its agents run (the `run` tool), as its worker found at start."""

    kind: Literal["bubblewrap", "seatbelt", "none", "unavailable"]
    """`none`: unconfined, written explicitly in the worker's config; `unavailable`: no sandbox could start, so the
    node runs no commands at all (its agents get no `run` tool)."""
    version: str | None = None
    network: Literal["none", "host"] = "none"
    """`none`: a network namespace of its own, loopback only."""
    limits: list[EnforcedLimit] = Field(default_factory=list)
    message: str | None = Field(default=None, max_length=1024)
    """Why it is unconfined or unavailable, and how to fix it."""
    allow_commands: list[list[str]] | None = Field(default=None, max_length=256)
    """The argv prefixes its agents may run (`run`, verify gates): placement sends a task with gates only where
    each gate's argv starts with one. None: not said (a worker before gates); no gate is placed there."""

    @property
    def confined(self) -> bool:
        return self.kind in ("bubblewrap", "seatbelt")

    @property
    def runs_commands(self) -> bool:
        return self.kind != "unavailable"


class NodeCapability(Model):
    accelerator: Accelerator = "cpu"
    accelerator_count: int = Field(default=0, ge=0)
    total_ramgb: float = Field(default=0, ge=0)
    available_ramgb: float = Field(default=0, ge=0)
    max_context_tokens: int = Field(default=0, ge=0)
    model_memory_gb: float | None = Field(default=None, ge=0)
    """Memory the inference server loads models into (GB): VRAM on a GPU node, unified memory on Apple Silicon, RAM
    on a CPU node; none: not said (placement then assumes any model fits)."""
    installed_models: list[str] = Field(default_factory=list)
    """Names of the models the node serves (discovered, plus `--model`); placement matches a task's model here."""
    models: list[ModelOffer] = Field(default_factory=list)
    """What the node's inference server serves, with context and speed where known (refreshed by its worker)."""
    executors: list[str] = Field(default_factory=list)
    """Executors installed and configured on the node; a task is placed only where its executor is (an empty list
    means unknown, for nodes not kept by a worker)."""
    sandbox: NodeSandbox | None = None
    """How the node confines its agents' commands (none: not said, a node not kept by a current worker)."""


IdentityKind = Literal["per-node", "shared", "pod-bound", "other"]


class NodeIdentity(Model):
    """Who the node's worker acts as, read off its own token: a per-node ServiceAccount (`foreman node join`), the
    shared worker ServiceAccount with a token bound to a Pod (the DaemonSet), the shared one unbound (a long-lived token
    on a host: it may change any task and any FleetNode), or other credentials (a user's)."""

    kind: IdentityKind
    user: str | None = None
    token_expires_at: datetime | None = None
    """When the worker's token expires (none: it does not, or the worker cannot tell)."""


class FleetNodeStatus(Model):
    phase: NodePhase | None = None
    last_heartbeat_time: datetime | None = None
    capability: NodeCapability = NodeCapability()
    running_tasks: int = Field(default=0, ge=0)
    """Tasks this node's worker is executing, as it last reported (for display; the controller counts its own)."""
    agent_version: str | None = None
    identity: NodeIdentity | None = None
    os: str | None = None
    arch: str | None = None
    conditions: Conditions


class FleetNode(Resource):
    plural: ClassVar[str] = "fleetnodes"
    singular: ClassVar[str] = "fleetnode"
    short_name: ClassVar[str] = "fn"
    namespaced: ClassVar[bool] = False

    kind: Literal["FleetNode"] = "FleetNode"
    spec: FleetNodeSpec = FleetNodeSpec()
    status: FleetNodeStatus = FleetNodeStatus()
    _status_written_at: datetime | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _note_status_write(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        node = handler(data)
        meta = data.get("metadata") if isinstance(data, dict) else None
        if isinstance(meta, dict):
            entries = meta.get("managedFields") or []
            # NB: every manager's entry, not only the status subresource's: some apiservers record no `subresource`
            # and fold a manager's writes into one entry, and a later write of any kind only errs towards more grace
            times = [entry["time"] for entry in entries if entry.get("time")]
            if times:
                node._status_written_at = datetime.fromisoformat(max(times))
        return node

    @property
    def status_written_at(self) -> datetime | None:
        """When the apiserver, on its own clock, last stored a write of the node (its managedFields; to the second):
        at the latest the worker's last heartbeat. NB: the one judge of a silence older than the controller that needs
        no trust in the worker's clock; managedFields themselves are not kept (memory)."""
        return self._status_written_at
