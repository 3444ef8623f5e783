"""Condition types and reasons: the vocabulary users see in `kubectl describe` and `status.failureReason`."""

from typing import Final

# Condition types on an AgenticTask (each written only when it says something: docs/design.md).
BLOCKED: Final = "Blocked"
SCHEDULED: Final = "Scheduled"
RUNNING: Final = "Running"
CLAIM_EXPIRED: Final = "ClaimExpired"
FINISHED: Final = "Finished"

# Reasons.
WAITING_FOR_DEPENDENCIES: Final = "WaitingForDependencies"
DEPENDENCY_NOT_FOUND: Final = "DependencyNotFound"
AGENT_NOT_FOUND: Final = "AgentNotFound"
UPSTREAM_OUTPUT_MISSING: Final = "UpstreamOutputMissing"
# A child an agent created (submit_task) that the controller refuses to run: what admission cannot count or see.
SUBTASK_LIMIT_EXCEEDED: Final = "SubtaskLimitExceeded"
"""Over its parent's Agent's maxChildren or maxDepth."""
SUBTASK_NOT_ALLOWED: Final = "SubtaskNotAllowed"
"""For an Agent its parent's Agent does not list, in another queue, or above its parent's priority."""
PARENT_NOT_RUNNING: Final = "ParentNotRunning"
"""Its parent does not exist (by name and uid) or was not Scheduled or Running on the node that created it."""
CAPABILITY_INHERITED: Final = "CapabilityInherited"
"""An Event: a child made before children inherited their parent's requiredCapability takes its parent's."""
DEPENDENCIES_MET: Final = "DependenciesMet"
DEPENDENCY_CYCLE: Final = "DependencyCycle"
UPSTREAM_FAILED: Final = "UpstreamFailed"
NO_FITTING_NODE: Final = "NoFittingNode"
FITTING_NODE_AVAILABLE: Final = "FittingNodeAvailable"
GATE_NOT_ALLOWED: Final = "GateNotAllowed"
"""A node would fit but none allows the task's verify gates' commands."""
QUEUE_NOT_FOUND: Final = "QueueNotFound"
QUEUE_FULL: Final = "QueueFull"
QUEUE_HAS_ROOM: Final = "QueueHasRoom"
# Why a placeable task waits, said on read (`foreman get tasks`), never written: slots change all the time.
RETRY_BACKOFF: Final = "RetryBackoff"
SLOT_BUSY: Final = "SlotBusy"
WAITING_FOR_WARM_NODE: Final = "WaitingForWarmNode"
COLD_START: Final = "ColdStart"
"""Placed where its model must first be loaded (policy `warm`): a Normal Event says what it costs."""
FLEET_NODE_ASSIGNED: Final = "FleetNodeAssigned"
CLAIMED: Final = "Claimed"
CANCELLED: Final = "Cancelled"
NODE_LOST: Final = "NodeLost"
CLAIM_EXPIRY_LIMIT_REACHED: Final = "ClaimExpiryLimitReached"
NODE_DRAINING: Final = "NodeDraining"
WORKER_RESTART_RECOVERY: Final = "WorkerRestartRecovery"
EXECUTOR_NOT_FOUND: Final = "ExecutorNotFound"
EXECUTOR_ERROR: Final = "ExecutorError"
EXECUTOR_CONTRACT_VIOLATION: Final = "ExecutorContractViolation"
TIMEOUT: Final = "Timeout"
UNDECODABLE: Final = "Undecodable"
"""Part of the stored task is nested too deep to decode (foreman.api.http.decoding): never run."""
COMPLETED: Final = "Completed"
# The agent executor's envelope's failureReason: how an agent's attempt ended without the model's answer.
NO_TOOL_CALL: Final = "NoToolCall"
MAX_TURNS_EXCEEDED: Final = "MaxTurnsExceeded"
CONTEXT_EXCEEDED: Final = "ContextExceeded"
GATE_FAILED: Final = "GateFailed"
"""The failureReason of a GATE-FAIL."""
ESCALATED: Final = "Escalated"
"""Back to Pending for the next model of its escalation ladder."""
REVIEWING: Final = "Reviewing"
"""Back to Pending for its reviewer (`spec.review`): the agent's GO passed its gates."""

# TaskSchedule: condition Accepted and the events of firing.
ACCEPTED: Final = "Accepted"
SCHEDULE_ACCEPTED: Final = "ScheduleAccepted"
# Why a schedule cannot fire: cron says so where it reads the expression (it sits below this module).
from foreman.api.cron.expression import IMPOSSIBLE_SCHEDULE as IMPOSSIBLE_SCHEDULE  # noqa: E402
from foreman.api.cron.expression import INVALID_SCHEDULE as INVALID_SCHEDULE  # noqa: E402
from foreman.api.cron.expression import INVALID_TIME_ZONE as INVALID_TIME_ZONE  # noqa: E402

SCHEDULE_LIMIT_EXCEEDED: Final = "ScheduleLimitExceeded"
"""An agent-made schedule beyond its Agent's bounds (maxSchedules, minScheduleIntervalSeconds, agents, queue)."""
INVALID_PARENT: Final = "InvalidParent"
"""An agent-made schedule whose creating task is not Scheduled or Running on the node that wrote it, in its
namespace, with its uid."""
TASK_CREATED: Final = "TaskCreated"
FIRE_SKIPPED: Final = "FireSkipped"
TASK_REPLACED: Final = "TaskReplaced"

# FleetNode: condition Ready, written by the worker's heartbeat (reason its phase) and the controller.
READY: Final = "Ready"
WORKER_HEARTBEAT: Final = "WorkerHeartbeat"
HEARTBEAT_STALE: Final = "HeartbeatStale"

# FleetNode: condition InferenceReady, for nodes with a model server (the agent executor's endpoint).
INFERENCE_READY: Final = "InferenceReady"
MODELS_LISTED: Final = "ModelsListed"
ENDPOINT_UNREACHABLE: Final = "EndpointUnreachable"
ENDPOINT_ERROR: Final = "EndpointError"

# FleetNode: condition ModelReportsValid, where the model server says what is loaded or how big a model is: False
# where the worker had to put what it advertises right (placement reads it: controller/warmth.py).
MODEL_REPORTS_VALID: Final = "ModelReportsValid"
MODELS_AS_SERVED: Final = "ModelsAsServed"
MODEL_LARGER_THAN_MEMORY: Final = "ModelLargerThanMemory"
LOAD_TIME_OUT_OF_RANGE: Final = "LoadTimeOutOfRange"
LOADED_LIST_FLAPPING: Final = "LoadedListFlapping"
