"""The Executor plug-in contract, and how executors are found (entry-point group `foreman.executors`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import structlog

from foreman.api.models.agents import AgentSpec
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.resources import AgenticTask, ModelOffer
from foreman.worker.metrics import WorkerMetrics

ENTRY_POINT_GROUP = "foreman.executors"
log = structlog.get_logger("foreman.worker.executors")


@dataclass(frozen=True)
class ExecutionContext:
    node_name: str
    attempt: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    """This executor's settings from the worker's configuration (never from the task)."""
    agent: AgentSpec | None = None
    """The Agent the task names in `spec.agentRef`, read by the worker just before the run."""
    publish_transcript: Callable[[str], Awaitable[None]] | None = None
    """Stores the task's transcript (JSON lines, whole each time) where `foreman logs` reads it."""
    metrics: WorkerMetrics | None = None
    """The worker's metrics, for executors that count more than the worker does (the agent's tokens)."""
    model: ModelOffer | None = None
    """What the node's model server says of the model the task runs with (its context window, whether it is
    loaded), where the node serves it; for executors that run on that server."""
    report_speed: Callable[[str, float], None] | None = None
    """Tells the worker a model's measured generation speed (tokens per second), which its FleetNode publishes."""


@runtime_checkable
class Executor(Protocol):
    """Runs one task and returns its foreman.v1 envelope.

    Raise any exception for a failure of the executor itself (the task fails with ExecutorError); raise
    ContractViolation when the work ran but produced no valid result. Cancellation (timeout, `spec.cancel`, task
    deleted, drain) arrives as asyncio.CancelledError: clean up (kill child processes) and re-raise.
    """

    name: str

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope: ...


def is_configured(executor: Executor, settings: Mapping[str, Any]) -> bool:
    """Whether the executor can run with these settings. An executor that needs configuration may define
    `is_configured(settings)`; the worker advertises only configured executors on its FleetNode."""
    check = getattr(executor, "is_configured", None)
    return bool(check(settings)) if callable(check) else True


def requires_inference_server(executor: Executor) -> bool:
    """Whether the executor runs on the node's model server (the agent): the node offers it only while that server
    answers (condition InferenceReady)."""
    return bool(getattr(executor, "requires_inference_server", False))


class ContractViolation(Exception):
    """The executor did not produce a valid foreman.v1 envelope."""


def load_executors() -> dict[str, type[Executor]]:
    """Every executor class installed under the entry-point group, by name."""
    found: dict[str, type[Executor]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[entry.name] = entry.load()
        except Exception as error:
            log.error("executor plug-in failed to load", executor=entry.name, error=str(error))
    return found
