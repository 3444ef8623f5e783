"""`foreman controller`, `foreman worker` and `foreman notifier`: the daemons, with their flags."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import shlex
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
import yaml
from pydantic import ValidationError

from foreman.api.http.client import Kube
from foreman.api.models.validation import describe
from foreman.api.runtime.daemon import configure_logging, settle_heap, stop_on_signals
from foreman.api.runtime.health import HealthServer
from foreman.cli.errors import USER_ERROR, UserError, user_errors
from foreman.cli.terminal import emit
from foreman.controller.config import ControllerConfig
from foreman.controller.expiry import TimeToLive
from foreman.controller.loop import Controller
from foreman.controller.match import POLICIES
from foreman.worker.config import ConfigError, WorkerConfig, from_file
from foreman.worker.sandbox import sandbox

STALLED = 3

KubeconfigOption = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: in-cluster, else ~/.kube/config)."
    ),
]


class LogFormat(enum.StrEnum):
    json = "json"
    console = "console"


LogFormatOption = Annotated[LogFormat, typer.Option("--log-format", help="json (daemons) or console.")]


class Placement(enum.StrEnum):
    warm = "warm"
    first_fit = "first-fit"
    spread = "spread"
    fastest = "fastest"


class Daemon(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


async def serve(kubeconfig: str | None, health_port: int, make: Callable[[Kube], tuple[Daemon, HealthServer]]) -> None:
    """Run one daemon until SIGTERM/SIGINT, with its health and metrics endpoint."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with await Kube.connect(kubeconfig) as kube:
        daemon, health = make(kube)
        if health_port:
            try:
                await health.start(health_port)
            except OSError as error:
                raise UserError(
                    f"--health-port {health_port}: {error.strerror or error} (another Foreman daemon on this host? "
                    "give each its own port, or 0 for none)"
                ) from None
        settle_heap()
        try:
            await daemon.run(stop)
        finally:
            await health.stop()


@user_errors
def controller(
    kubeconfig: KubeconfigOption = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only these namespaces (repeatable; default all)."),
    ] = None,
    stale_after: Annotated[
        float, typer.Option(help="Seconds without a heartbeat before a FleetNode is NotReady and loses its tasks.")
    ] = 90.0,
    max_claim_expiries: Annotated[
        int, typer.Option(help="Claim expiries before a task fails with ClaimExpiryLimitReached.")
    ] = 3,
    resync: Annotated[
        float, typer.Option(help="Seconds between full re-examinations (a safety net; events drive the work).")
    ] = 60.0,
    leader_elect: Annotated[bool, typer.Option(help="Hold a Lease so only one replica schedules.")] = True,
    lease_namespace: Annotated[str, typer.Option(help="Namespace of the leader-election Lease.")] = "foreman-system",
    lease_name: Annotated[str, typer.Option(help="Name of the leader-election Lease.")] = "foreman-controller",
    lease_duration: Annotated[
        float, typer.Option(help="Lease duration in seconds; a lost leader stops within it.")
    ] = 15.0,
    identity: Annotated[
        str | None, typer.Option(help="Leader-election identity (default: $POD_NAME or host-pid).")
    ] = None,
    placement: Annotated[
        Placement,
        typer.Option(
            help="Which fitting node a task goes to: warm (least model loading, a short wait for a busy warm node; "
            "first-fit where nodes say nothing of loaded models), first-fit (by name), spread (most free slots), "
            "fastest (highest measured tokens per second for the task's model)."
        ),
    ] = Placement.warm,
    cold_start_delay: Annotated[
        float,
        typer.Option(
            min=0,
            help="Policy warm: seconds a task waits for a busy node with its model loaded before starting cold "
            "elsewhere (an Agent's or TaskQueue's coldStartDelay wins).",
        ),
    ] = 5.0,
    ttl_after_success: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds a Succeeded task is kept before it is deleted (default: kept; a task's own "
            "spec.ttlSecondsAfterFinished wins).",
        ),
    ] = None,
    ttl_after_failure: Annotated[
        float | None,
        typer.Option(
            min=0, help="Seconds a Failed task is kept before it is deleted (default: kept; the task's field wins)."
        ),
    ] = None,
    health_port: Annotated[int, typer.Option(help="Port for /healthz, /readyz and /metrics (0: none).")] = 8080,
    log_format: LogFormatOption = LogFormat.json,
) -> None:
    """Run the controller: place Pending AgenticTasks on fitting FleetNodes, enforce dependencies, reclaim lost work.

    Example:  foreman controller --kubeconfig ~/.foreman/dev/kubeconfig --log-format console --placement fastest
    """
    configure_logging(json=log_format is LogFormat.json)
    config = ControllerConfig(
        namespaces=tuple(namespace or ()),
        stale_after=timedelta(seconds=stale_after),
        max_claim_expiries=max_claim_expiries,
        resync_every=resync,
        leader_election=leader_elect,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        lease_duration=lease_duration,
        placement=next(policy for policy in POLICIES if policy == placement.value),
        cold_start_delay=cold_start_delay,
        ttl=TimeToLive(_seconds(ttl_after_success), _seconds(ttl_after_failure)),
    )
    if identity:
        config = dataclasses.replace(config, identity=identity)

    def make(kube: Kube) -> tuple[Daemon, HealthServer]:
        instance = Controller(kube, config)
        return instance, HealthServer(instance.metrics.registry, healthy=instance.is_healthy, ready=instance.is_ready)

    asyncio.run(serve(kubeconfig, health_port, make))


DEFAULT_NOTIFIER_HEALTH_PORT = 8082


@user_errors
def notifier(
    kubeconfig: KubeconfigOption = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Deliver only these namespaces' tasks (repeatable; default all)."),
    ] = None,
    dashboard_url: Annotated[
        str | None, typer.Option(help="Where people reach `foreman dashboard`: each payload links to the task there.")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds one send may take before it is tried again.")] = 10.0,
    max_attempts: Annotated[
        int, typer.Option(min=1, help="Tries of one delivery before it is Failed (exponential backoff between).")
    ] = 8,
    max_backoff: Annotated[float, typer.Option(min=0, help="The longest wait in seconds between two tries.")] = 300.0,
    leader_elect: Annotated[bool, typer.Option(help="Hold a Lease so only one replica delivers.")] = True,
    lease_namespace: Annotated[str, typer.Option(help="Namespace of the leader-election Lease.")] = "foreman-system",
    lease_name: Annotated[str, typer.Option(help="Name of the leader-election Lease.")] = "foreman-notifier",
    identity: Annotated[
        str | None, typer.Option(help="Leader-election identity (default: $POD_NAME or host-pid).")
    ] = None,
    health_port: Annotated[
        int, typer.Option(help="Port for /healthz, /readyz and /metrics (0: none).")
    ] = DEFAULT_NOTIFIER_HEALTH_PORT,
    log_format: LogFormatOption = LogFormat.json,
) -> None:
    """Run the notifier: deliver finished tasks' results to their spec.notify sinks (webhook, CloudEvents, Apprise,
    log), at least once, recording each delivery in status.deliveries. The only Foreman daemon that reads Secrets.

    Example:  foreman notifier --kubeconfig ~/.foreman/dev/kubeconfig --log-format console --no-leader-elect
    """
    import aiohttp  # NB: here, like the worker's imports: the other daemons start from this module too

    from foreman.controller.config import default_identity
    from foreman.controller.leader import LeaderElector, LeaseConfig
    from foreman.notifier.due import RetryPolicy
    from foreman.notifier.loop import Notifier, NotifierConfig
    from foreman.notifier.secrets import SecretReader
    from foreman.notifier.sinks import Sender

    configure_logging(json=log_format is LogFormat.json)
    config = NotifierConfig(
        namespaces=tuple(namespace or ()),
        retry=RetryPolicy(max_attempts=max_attempts, cap=max_backoff),
        dashboard_url=dashboard_url,
    )
    lease = LeaseConfig(name=lease_name, namespace=lease_namespace, identity=identity or default_identity())

    async def run() -> None:
        async with aiohttp.ClientSession() as session:

            def make(kube: Kube) -> tuple[Daemon, HealthServer]:
                sender = Sender(session, SecretReader(kube), timeout=timeout)
                elect = (lambda changed: LeaderElector(kube, lease, on_change=changed)) if leader_elect else None
                instance = Notifier(kube, sender, config, elect=elect)
                return instance, HealthServer(
                    instance.metrics.registry, healthy=instance.is_healthy, ready=instance.is_ready
                )

            await serve(kubeconfig, health_port, make)

    asyncio.run(run())


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def parse_labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--label wants key=value, got {pair!r}")
        labels[key] = value
    return labels


DEFAULT_WORKER_HEALTH_PORT = 8081


def _report_sandbox(config: WorkerConfig) -> bool:
    """Print what the agent's commands would be confined by on this host (and what not); True when confined."""
    from foreman.worker.executors.agent import AgentExecutorSettings  # NB: see worker()

    try:
        settings = AgentExecutorSettings.model_validate(config.executors.get("agent") or {})
    except ValidationError as error:
        raise UserError(f"executors.agent: {describe(error)}") from None
    found = asyncio.run(
        sandbox.detect(settings, allow_commands=settings.allow_commands, workspace_root=settings.workspace_root)
    )
    for confined, line in found.report():
        emit(f"{'ok  ' if confined else 'NOT '} {line}")
    return found.kind in ("bubblewrap", "seatbelt")


def worker_config(config_file: Path | None, flags: dict[str, Any]) -> tuple[WorkerConfig, dict[str, Any]]:
    """The config file's settings, each overridden by a flag that was given; and the file's daemon options."""
    base: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if config_file is not None:
        document = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(document, dict):
            raise UserError(f"{config_file}: expected a mapping of settings")
        try:
            base, options = from_file(document)
        except ConfigError as error:
            raise UserError(f"{config_file}: {error}") from None
    overrides = {**base.pop("overrides", {}), **flags.pop("overrides")}
    # NB: a flag sets one executor setting (--command, --llm-endpoint); the file's other settings stay
    executors = dict(base.pop("executors", None) or {})
    for name, settings in flags.pop("executors", {}).items():
        executors[name] = {**(executors.get(name) or {}), **settings}
    config = WorkerConfig.model_validate(
        {**base, **{k: v for k, v in flags.items() if v is not None}, "overrides": overrides, "executors": executors}
    )
    return config, options


@user_errors
def worker(
    ctx: typer.Context,
    kubeconfig: KubeconfigOption = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML file of worker settings (flags win).")
    ] = None,
    node_name: Annotated[str | None, typer.Option(help="FleetNode name (default: host name).")] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="FleetNode label key=value (repeatable): what nodeSelector matches."),
    ] = None,
    role: Annotated[list[str] | None, typer.Option("--role", help="FleetNode role (repeatable).")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Tasks run at once (default 1).")] = None,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Take tasks only from these namespaces (default all).")
    ] = None,
    accelerator: Annotated[
        str | None, typer.Option(help="Override the detected accelerator: cuda, metal, rocm or cpu.")
    ] = None,
    accelerator_count: Annotated[int | None, typer.Option(help="Override the detected accelerator count.")] = None,
    ram_gb: Annotated[float | None, typer.Option(help="Override detected RAM (total and available), in GB.")] = None,
    context_tokens: Annotated[
        int | None, typer.Option(help="Largest context window the node's models take (default 8192).")
    ] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="An installed model name (repeatable).")] = None,
    command: Annotated[
        str | None, typer.Option(help="argv for the `command` executor, split like a shell would (no shell runs).")
    ] = None,
    llm_endpoint: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible base URL of this host's model server, for the `agent` executor."),
    ] = None,
    heartbeat_interval: Annotated[float | None, typer.Option(help="Seconds between heartbeats (default 10).")] = None,
    drain_grace: Annotated[
        float | None, typer.Option(help="Seconds running tasks get to finish on SIGTERM (default 30).")
    ] = None,
    health_port: Annotated[
        int | None, typer.Option(help="Port for /healthz and /metrics (0: none; default 8081).")
    ] = None,
    log_format: LogFormatOption = LogFormat.json,
    check_sandbox: Annotated[
        bool, typer.Option("--check-sandbox", help="Say how agent commands would be confined here, and exit.")
    ] = False,
) -> None:
    """Run a worker: register this host as a FleetNode, claim tasks placed on it and run their executors.

    Exit codes: 0 after a clean drain (SIGTERM, or `foreman node leave`), 2 for a configuration mistake or an expired
    token, 3 when the API stayed unreachable.

    Example:  foreman worker --node-name gpu-01 -l pool=research --context-tokens 131072 --command "python3 agent.py"

    Example:  foreman worker --llm-endpoint http://127.0.0.1:11434/v1 --model qwen2.5-coder:7b
    """
    if ctx.invoked_subcommand is not None:
        return  # NB: `foreman worker install-service`: the group's own options are the daemon's, unused there
    configure_logging(json=log_format is LogFormat.json)
    config, options = worker_config(
        config_file,
        {
            "node_name": node_name,
            "labels": parse_labels(label) if label else None,
            "roles": role,
            "max_concurrent_tasks": max_concurrent,
            "namespaces": namespace,
            "max_context_tokens": context_tokens,
            "installed_models": model,
            "executors": {
                **({"command": {"argv": shlex.split(command)}} if command else {}),
                **({"agent": {"endpoint": llm_endpoint}} if llm_endpoint else {}),
            },
            "heartbeat_interval": heartbeat_interval,
            "drain_grace": drain_grace,
            "overrides": {
                k: v
                for k, v in {
                    "accelerator": accelerator,
                    "acceleratorCount": accelerator_count,
                    "totalRAMGB": ram_gb,
                    "availableRAMGB": ram_gb,
                }.items()
                if v is not None
            },
        },
    )

    if check_sandbox:
        raise typer.Exit(0 if _report_sandbox(config) else 1)
    # NB: imported here, not at the top: `foreman controller` starts from this module too, and the worker's executors
    # (the agent's openai client, 19 MiB of the controller's RSS) are no part of it.
    from foreman.worker.loop import Worker
    from foreman.worker.registrar import TokenExpired, WorkerStalled

    def make(kube: Kube) -> tuple[Daemon, HealthServer]:
        instance = Worker(kube, config)
        return instance, HealthServer(instance.metrics.registry, healthy=instance.is_healthy, ready=instance.is_healthy)

    try:
        port = health_port if health_port is not None else int(options.get("health_port", DEFAULT_WORKER_HEALTH_PORT))
        asyncio.run(serve(kubeconfig, port, make))
    except WorkerStalled as error:
        emit(f"error: {error}", err=True)
        raise typer.Exit(STALLED) from None
    except TokenExpired as error:
        emit(f"error: {error}", err=True)
        raise typer.Exit(USER_ERROR) from None
