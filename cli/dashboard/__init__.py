"""`foreman dashboard`: the fleet, the tasks, their graphs and the agents' work, live in a browser.

`views` (pure) says what each page shows, `guard` (pure) who may ask, `server` is the aiohttp shell around them,
and `static/` the page itself (plain JavaScript and CSS, with dagre for the graph layout, checked in).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from foreman.api.http.client import Kube
from foreman.cli.dashboard.server import Settings, serving
from foreman.cli.errors import UserError, user_errors
from foreman.cli.tasks import Kubeconfig, Namespace


@user_errors
def dashboard(
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).")] = 8090,
    address: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 only inside a pod.")] = "127.0.0.1",
    namespace: Namespace = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Tasks and schedules in every namespace.")
    ] = False,
    allow_actions: Annotated[
        bool, typer.Option("--allow-actions", help="Offer cancel (tasks) and trigger (schedules), as the user.")
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="A further Host name the dashboard answers to (a Service, an Ingress)."),
    ] = None,
    stale_after: Annotated[
        float, typer.Option(help="Seconds without a heartbeat when a node turns red (the controller's --stale-after).")
    ] = 90,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Serve a live dashboard of the fleet, tasks, graphs and schedules, read with your own kubeconfig (your RBAC
    applies). Read-only unless --allow-actions.

    Example:  foreman dashboard -A   (then open http://127.0.0.1:8090/)
    """

    async def run() -> None:
        async with await Kube.connect(kubeconfig) as kube:
            scope = None if all_namespaces else namespace or kube.namespace
            settings = Settings(
                namespace=scope,
                allow_actions=allow_actions,
                stale_after=stale_after,
                address=address,
                allow_hosts=tuple(allow_host or ()),
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            try:
                async with serving(kube, settings, port) as url:
                    typer.echo(f"dashboard of {scope or 'all namespaces'} on {kube.server}: {url}", err=True)
                    await stop.wait()
            except OSError as error:
                raise UserError(f"cannot listen on {address}:{port}: {error.strerror or error} (try --port)") from None

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
