"""The whole `foreman` command: every subcommand (foreman.cli.main starts the daemons from a smaller one)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from foreman.api.http.client import Kube
from foreman.api.tooling.install import install as install_into
from foreman.api.tooling.install import uninstall as uninstall_from
from foreman.api.tooling.manifests import IMAGE, NAMESPACE, install_manifests, pinned_worker_rbac, render
from foreman.cli import demo, dev, logs, nodes, notify, queues, schedules, tasks
from foreman.cli.daemon_commands import add_daemons
from foreman.cli.dashboard import dashboard
from foreman.cli.errors import user_errors
from foreman.cli.group import foreman_app
from foreman.cli.terminal import emit

app = foreman_app()
app.add_typer(dev.app, name="dev")
app.add_typer(schedules.app, name="schedule")
app.add_typer(queues.app, name="queue")
app.add_typer(nodes.app, name="node")
app.add_typer(notify.app, name="notify")
add_daemons(app)
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
    foreman_namespace: nodes.ForemanNamespace = NAMESPACE,
) -> None:
    """Delete what `foreman install` applied (workloads and dashboard included) and the identities `foreman node join`
    made, wherever they are (as their bindings and FleetNodes say, and in --foreman-namespace); the CRDs stay, with
    your tasks, unless --purge. Safe to repeat.

    Example:  foreman uninstall --kubeconfig ~/.kube/config
              helm uninstall foreman && foreman uninstall --foreman-namespace fleet-ops
    """

    async def run() -> list[str]:
        async with await Kube.connect(kubeconfig) as kube:
            return await uninstall_from(kube, purge=purge, namespace=foreman_namespace)

    deleted = asyncio.run(run())
    for name in deleted:
        emit(f"deleted {name}")
    if not deleted:
        emit("nothing of Foreman's is installed")
    elif not purge:
        emit("kept the CRDs and everything in them (foreman uninstall --purge deletes them)")
