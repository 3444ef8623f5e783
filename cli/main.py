"""The `foreman` command."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from foreman.api.install import install as install_into
from foreman.api.kube import Kube
from foreman.api.manifests import install_manifests, pinned_worker_rbac, render
from foreman.cli import daemons, demo, dev, logs, schedules, tasks
from foreman.cli.errors import user_errors

app = typer.Typer(
    name="foreman",
    help="Capability-aware dispatcher for agentic tasks on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev.app, name="dev")
app.add_typer(schedules.app, name="schedule")
app.command()(daemons.controller)
app.command()(daemons.worker)
app.command()(demo.demo)
for command in (tasks.submit, tasks.get, tasks.describe, tasks.cancel, tasks.result, logs.logs):
    app.command()(command)

Kubeconfig = Annotated[
    str | None,
    typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: in-cluster or ~/.kube/config)."),
]
WithWorkloads = Annotated[
    bool,
    typer.Option("--with-workloads", help="Also the controller Deployment and worker DaemonSet (needs the image)."),
]


@app.command()
@user_errors
def manifests(
    with_workloads: WithWorkloads = False,
    worker_node: Annotated[
        str | None,
        typer.Option(help="Instead: a per-host worker identity that can touch only this FleetNode (created with it)."),
    ] = None,
) -> None:
    """Print what `foreman install` applies, as multi-document YAML.

    Example:  foreman manifests --with-workloads | kubectl apply -f -
              foreman manifests --worker-node gpu-01 | kubectl apply -f -
    """
    documents = pinned_worker_rbac(worker_node) if worker_node else install_manifests(with_workloads=with_workloads)
    typer.echo(render(documents), nl=False)


@app.command()
@user_errors
def install(
    kubeconfig: Kubeconfig = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be applied, apply nothing.")] = False,
    with_workloads: WithWorkloads = False,
) -> None:
    """Install the CRDs and RBAC (server-side apply; safe to repeat).

    Example:  foreman install --kubeconfig ~/.kube/config
    """
    if dry_run:
        for manifest in install_manifests(with_workloads=with_workloads):
            typer.echo(f"would apply {manifest['kind']}/{manifest['metadata']['name']}")
        return

    async def run() -> None:
        async with await Kube.connect(kubeconfig) as kube:
            for manifest in await install_into(kube, with_workloads=with_workloads):
                typer.echo(f"applied {manifest['kind']}/{manifest['metadata']['name']}")

    asyncio.run(run())
