"""Public import path of the task and node models (README, examples/): the names of `foreman.api.models.tasks` and
`foreman.api.models.nodes` and what every resource has, re-exported; Foreman's own code imports those modules
instead."""

from foreman.api.models.base import API_VERSION, GROUP, VERSION, DnsName, Key, Resource, key_of
from foreman.api.models.envelope import Usage  # noqa: F401 - it moved to the envelope; kept here for older code
from foreman.api.models.nodes import (
    Accelerator,
    AcceleratorRequest,
    EnforcedLimit,
    FleetNode,
    FleetNodeSpec,
    FleetNodeStatus,
    IdentityKind,
    ModelOffer,
    NodeCapability,
    NodeIdentity,
    NodePhase,
    NodeSandbox,
)
from foreman.api.models.tasks import (
    MAX_ATTEMPTS_SECONDS,
    NODE_LABEL,
    TERMINAL_PHASES,
    AgenticTask,
    AgenticTaskSpec,
    AgenticTaskStatus,
    Payload,
    RequiredCapability,
    TaskPhase,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "MAX_ATTEMPTS_SECONDS",
    "NODE_LABEL",
    "TERMINAL_PHASES",
    "VERSION",
    "Accelerator",
    "AcceleratorRequest",
    "AgenticTask",
    "AgenticTaskSpec",
    "AgenticTaskStatus",
    "DnsName",
    "EnforcedLimit",
    "FleetNode",
    "FleetNodeSpec",
    "FleetNodeStatus",
    "IdentityKind",
    "Key",
    "ModelOffer",
    "NodeCapability",
    "NodeIdentity",
    "NodePhase",
    "NodeSandbox",
    "Payload",
    "RequiredCapability",
    "Resource",
    "TaskPhase",
    "key_of",
]
