"""`foreman controller` and `foreman worker`: the two daemons, with their flags."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Annotated

import typer

from foreman.api.daemon import HealthServer, configure_logging, stop_on_signals
from foreman.api.kube import Kube
from foreman.cli.errors import user_errors
from foreman.controller.config import ControllerConfig
from foreman.controller.loop import Controller

KubeconfigOption = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: in-cluster, else ~/.kube/config)."
    ),
]
LogFormat = Annotated[str, typer.Option("--log-format", help="json (daemons) or console.")]


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
    health_port: Annotated[int, typer.Option(help="Port for /healthz, /readyz and /metrics (0: none).")] = 8080,
    log_format: LogFormat = "json",
) -> None:
    """Run the controller: place Pending AgenticTasks on fitting FleetNodes, enforce dependencies, reclaim lost work.

    Example:  foreman controller --kubeconfig ~/.foreman/dev/kubeconfig --log-format console
    """
    configure_logging(json=log_format == "json")
    config = ControllerConfig(
        namespaces=tuple(namespace or ()),
        stale_after=timedelta(seconds=stale_after),
        max_claim_expiries=max_claim_expiries,
        resync_every=resync,
        leader_election=leader_elect,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        lease_duration=lease_duration,
    )
    if identity:
        config = dataclasses.replace(config, identity=identity)

    async def run() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        async with await Kube.connect(kubeconfig) as kube:
            instance = Controller(kube, config)
            health = HealthServer(instance.metrics.registry, healthy=lambda: True, ready=instance.is_ready)
            if health_port:
                await health.start(health_port)
            try:
                await instance.run(stop)
            finally:
                await health.stop()

    asyncio.run(run())
