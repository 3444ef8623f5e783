"""The Executor plug-in contract, and how executors are found (entry-point group `foreman.executors`).

An executor is any class with a `name` and `async execute(task, context)` (`Executor`). The rest of the contract is
optional: the hooks of `ExecutorHooks`, each with the default a class gets when it leaves the hook out. The worker
reads them only through `hooks()`, so nothing about any one executor is written into the worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import structlog

from foreman.api.models.agents import AgentSpec
from foreman.api.models.envelope import ResultEnvelope, Usage
from foreman.api.models.nodes import ModelOffer, NodeSandbox
from foreman.api.models.tasks import AgenticTask
from foreman.worker.children import TaskFleet
from foreman.worker.metrics import WorkerMetrics

ENTRY_POINT_GROUP = "foreman.executors"
log = structlog.get_logger("foreman.worker.executors")


@dataclass(frozen=True)
class InferenceServer:
    """The node's OpenAI-compatible model server an executor runs on, as its settings name it."""

    endpoint: str
    """The base URL (…/v1)."""
    api_key_env: str | None = None
    """The environment variable holding its key (the worker reads it; a task never sees it)."""
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    """Name a task uses -> name the server lists: placement matches the aliases too."""


@dataclass(frozen=True)
class ModelContext:
    """For an executor on the node's model server: what the server says of the task's model, and where measured
    speeds go (the FleetNode publishes them, and placement policy `fastest` reads them)."""

    offer: ModelOffer | None = None
    """The model the task runs with as the node advertises it (its context window, whether it is loaded)."""
    report_speed: Callable[[str, float], None] | None = None
    """Tells the worker a model's measured generation speed (tokens per second)."""


@dataclass(frozen=True)
class ExecutionContext:
    node_name: str
    attempt: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    """This executor's settings from the worker's configuration (never from the task)."""
    agent: AgentSpec | None = None
    """The Agent the task names in `spec.agentRef`, read by the worker just before the run."""
    publish_transcript: Callable[[str], Awaitable[None]] | None = None
    """Stores the attempt's transcript (JSON lines, whole each time) where `foreman logs` reads it."""
    report_usage: Callable[[Usage], None] | None = None
    """Tells the worker what the attempt consumed so far (the whole, each time): an attempt that times out or is
    cancelled keeps its usage in the task's attemptHistory."""
    metrics: WorkerMetrics | None = None
    """The worker's metrics, for executors that count more than the worker does (the agent's tokens)."""
    model: ModelContext | None = None
    """Only for executors whose `inference_server` hook names a server."""
    upstreams: Mapping[str, ResultEnvelope | None] = field(default_factory=dict)
    """The envelopes of the task's upstreams (dependsOn), read when the payload quotes them or its Agent inherits
    them; the payload the executor gets has its `{{ upstream.NAME.FIELD }}` already resolved."""
    fleet: TaskFleet | None = None
    """What the task may create on the fleet (children, schedules), bound to it, through the worker's client: given
    only when its Agent may create some (`spec.subtasks.agents` or `maxSchedules`); the apiserver's admission policy
    bounds what the worker's token may write."""


@runtime_checkable
class Executor(Protocol):
    """Runs one task and returns its foreman.v1 envelope.

    Raise any exception for a failure of the executor itself (the task fails with ExecutorError); raise
    ContractViolation when the work ran but produced no valid result. Cancellation (timeout, `spec.cancel`, task
    deleted, drain) arrives as asyncio.CancelledError: clean up (kill child processes) and re-raise.
    """

    name: str

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope: ...


class ExecutorHooks:
    """The optional part of the Executor contract, with its defaults. Subclass it, or define any of these methods on
    the executor itself; `settings` is always the executor's section of the worker's config file."""

    def is_configured(self, settings: Mapping[str, Any]) -> bool:
        """Whether these settings are enough to run (default: yes). The FleetNode advertises only configured
        executors, so tasks for an unconfigured one are never placed here."""
        return True

    def inference_server(self, settings: Mapping[str, Any]) -> InferenceServer | None:
        """The model server this executor runs on (default: none). The worker probes it on its own clock, advertises
        its models, offers the executor only while it answers (condition InferenceReady), and hands each run the
        task's model (`ExecutionContext.model`)."""
        return None

    async def confinement(self, settings: Mapping[str, Any]) -> NodeSandbox | None:
        """How the processes this executor starts are confined here, found once when the worker starts (default:
        it says nothing). The FleetNode advertises it; placement of tasks that need a sandbox reads it."""
        return None


_DEFAULTS = ExecutorHooks()


@dataclass(frozen=True)
class Hooks:
    """One executor's hooks: its own where it defines them, else the defaults."""

    is_configured: Callable[[Mapping[str, Any]], bool]
    inference_server: Callable[[Mapping[str, Any]], InferenceServer | None]
    confinement: Callable[[Mapping[str, Any]], Awaitable[NodeSandbox | None]]


def hooks(executor: Executor) -> Hooks:
    return Hooks(
        is_configured=getattr(executor, "is_configured", _DEFAULTS.is_configured),
        inference_server=getattr(executor, "inference_server", _DEFAULTS.inference_server),
        confinement=getattr(executor, "confinement", _DEFAULTS.confinement),
    )


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
