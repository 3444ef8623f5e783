"""The `foreman` command."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

# NB: typer (>= 0.24) vendors click as typer._click; its exceptions are not re-exported under a public name
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from foreman.api import PACKAGE_VERSION
from foreman.api.http.client import Kube
from foreman.api.runtime.daemon import configure_logging
from foreman.api.tooling.install import install as install_into
from foreman.api.tooling.install import uninstall as uninstall_from
from foreman.api.tooling.manifests import IMAGE, install_manifests, pinned_worker_rbac, render
from foreman.cli import daemons, demo, dev, logs, nodes, notify, queues, schedules, service, tasks
from foreman.cli.dashboard import dashboard
from foreman.cli.errors import USER_ERROR, user_errors
from foreman.cli.terminal import emit

app = typer.Typer(
    name="foreman",
    help="Capability-aware dispatcher for agentic tasks on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if asked:
        emit(f"foreman {PACKAGE_VERSION}")
        raise typer.Exit()


@app.callback()
def _every_command(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    # NB: a person at a terminal gets one `error:` line for a failure, not the retry warnings before it (those are
    # for daemons' logs); the daemons configure their own logging when they start.
    configure_logging(json=False, level="critical")


def main() -> None:
    """The `foreman` command. A mistake in the arguments is one `error:` line and exit 2, like any other mistake
    (click would print a usage block, or typer a boxed panel)."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as help_asked:
        emit(help_asked.ctx.get_help() if help_asked.ctx else "")
        code = 0
    except UsageError as error:
        where = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
        emit(f"error: {error.format_message()}{where}", err=True)
        code = USER_ERROR
    except typer.Abort:
        code = 130
    sys.exit(code or 0)


app.add_typer(dev.app, name="dev")
app.add_typer(schedules.app, name="schedule")
app.add_typer(queues.app, name="queue")
app.add_typer(nodes.app, name="node")
app.add_typer(notify.app, name="notify")
app.command()(daemons.controller)
# NB: a group that runs the daemon when no subcommand is given: `foreman worker [OPTIONS]` is unchanged
worker = typer.Typer(invoke_without_command=True, no_args_is_help=False)
worker.callback()(daemons.worker)
worker.command("install-service")(service.install_service)
app.add_typer(worker, name="worker")
app.command()(daemons.notifier)
app.command()(demo.demo)
app.command()(dashboard)
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
NotifyNamespace = Annotated[
    list[str] | None,
    typer.Option(
        "--notify-namespace",
        help="Let the notifier read Secrets (labelled foreman.dev/notifier=true) in this namespace (repeatable).",
    ),
]
TranscriptNamespace = Annotated[
    list[str] | None,
    typer.Option(
        "--transcript-namespace",
        help="Let the DaemonSet's worker write agent transcripts only in this namespace (repeatable; default: all).",
    ),
]
WithDashboard = Annotated[
    bool,
    typer.Option("--with-dashboard", help="Also a read-only dashboard Deployment (reach it with port-forward)."),
]
Image = Annotated[
    str, typer.Option(help="The image the Deployments and DaemonSet run (yours, built from the Dockerfile).")
]


@app.command()
@user_errors
def manifests(
    with_workloads: WithWorkloads = False,
    with_dashboard: WithDashboard = False,
    image: Image = IMAGE,
    notify_namespace: NotifyNamespace = None,
    transcript_namespace: TranscriptNamespace = None,
    worker_node: Annotated[
        str | None,
        typer.Option(help="Instead: a per-host worker identity that can touch only this FleetNode (created with it)."),
    ] = None,
) -> None:
    """Print what `foreman install` applies, as multi-document YAML.

    Example:  foreman manifests --with-workloads | kubectl apply -f -
              foreman manifests --with-dashboard | kubectl apply -f -
              foreman manifests --worker-node gpu-01 | kubectl apply -f -
    """
    documents = (
        pinned_worker_rbac(worker_node)
        if worker_node
        else install_manifests(
            with_workloads=with_workloads,
            with_dashboard=with_dashboard,
            image=image,
            notify_namespaces=tuple(notify_namespace or ()),
            transcript_namespaces=tuple(transcript_namespace or ()),
        )
    )
    emit(render(documents), nl=False)


@app.command()
@user_errors
def install(
    kubeconfig: Kubeconfig = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be applied, apply nothing.")] = False,
    with_workloads: WithWorkloads = False,
    with_dashboard: WithDashboard = False,
    image: Image = IMAGE,
    notify_namespace: NotifyNamespace = None,
    transcript_namespace: TranscriptNamespace = None,
) -> None:
    """Install the CRDs and RBAC (server-side apply; safe to repeat).

    Example:  foreman install --kubeconfig ~/.kube/config --notify-namespace team
    """
    notify, transcripts = tuple(notify_namespace or ()), tuple(transcript_namespace or ())
    if dry_run:
        for manifest in install_manifests(
            with_workloads=with_workloads,
            with_dashboard=with_dashboard,
            image=image,
            notify_namespaces=notify,
            transcript_namespaces=transcripts,
        ):
            emit(f"would apply {manifest['kind']}/{manifest['metadata']['name']}")
        return

    async def run() -> None:
        async with await Kube.connect(kubeconfig) as kube:
            for manifest in await install_into(
                kube,
                with_workloads=with_workloads,
                with_dashboard=with_dashboard,
                image=image,
                notify_namespaces=notify,
                transcript_namespaces=transcripts,
            ):
                emit(f"applied {manifest['kind']}/{manifest['metadata']['name']}")

    asyncio.run(run())


@app.command()
@user_errors
def uninstall(
    kubeconfig: Kubeconfig = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also the CRDs, and with them every task, node, schedule and queue.")
    ] = False,
) -> None:
    """Delete what `foreman install` applied (workloads and dashboard included) and the identities `foreman node join`
    made; the CRDs stay, with your tasks, unless --purge. Safe to repeat.

    Example:  foreman uninstall --kubeconfig ~/.kube/config
    """

    async def run() -> list[str]:
        async with await Kube.connect(kubeconfig) as kube:
            return await uninstall_from(kube, purge=purge)

    deleted = asyncio.run(run())
    for name in deleted:
        emit(f"deleted {name}")
    if not deleted:
        emit("nothing of Foreman's is installed")
    elif not purge:
        emit("kept the CRDs and everything in them (foreman uninstall --purge deletes them)")
