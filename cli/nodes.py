"""`foreman node join / rotate / leave / list`: a host in the fleet with an identity of its own, in one command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import yaml

from foreman.api.http.client import Kube
from foreman.api.models.base import utcnow
from foreman.api.models.nodes import FleetNode
from foreman.api.tooling import nodes
from foreman.api.tooling.localcluster.cluster import write_private
from foreman.api.tooling.manifests import NAMESPACE
from foreman.cli.daemons import parse_labels
from foreman.cli.errors import UserError, user_errors
from foreman.cli.render import table
from foreman.cli.tasks import CLI_RETRY, Kubeconfig
from foreman.cli.terminal import emit

app = typer.Typer(
    help="Hosts in the fleet: join with an identity of their own, rotate its token, leave.", no_args_is_help=True
)
T = TypeVar("T")

Name = Annotated[str, typer.Argument(help="The node's name: its FleetNode, and its identity foreman-worker-NAME.")]
Duration = Annotated[
    str, typer.Option("--duration", help="How long the token lives (720h, 90m; the apiserver may cap it).")
]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Kubeconfig to write (default ./foreman-worker-NAME.kubeconfig).")
]
Server = Annotated[
    str | None,
    typer.Option(help="The apiserver URL as the host reaches it (default: your kubeconfig's, which may be local)."),
]
ForemanNamespace = Annotated[
    str,
    typer.Option(
        "--foreman-namespace",
        envvar="FOREMAN_NAMESPACE",
        help="The namespace Foreman is installed in (the chart's `namespace` value), where node identities live.",
    ),
]


def _run(kubeconfig: str | None, work: Callable[[Kube], Awaitable[T]]) -> T:
    async def run() -> T:
        async with await Kube.connect(kubeconfig, retry=CLI_RETRY) as kube:
            try:
                return await work(kube)
            except nodes.JoinRefused as refused:
                raise UserError(str(refused)) from None

    return asyncio.run(run())


def _lifetime(duration: str) -> timedelta:
    try:
        lifetime = nodes.parse_duration(duration)
    except nodes.JoinRefused as refused:
        raise UserError(f"--duration: {refused}") from None
    if lifetime < timedelta(minutes=10):
        raise UserError(f"--duration {duration} is under 10m, the shortest token the apiserver issues")
    return lifetime


def _until(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


@app.command()
@user_errors
def join(
    name: Name,
    kubeconfig: Kubeconfig = None,
    accelerator: Annotated[
        str | None, typer.Option(help="The host's accelerator, for its worker's command line (cuda, metal, rocm, cpu).")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="FleetNode label key=value (repeatable).")
    ] = None,
    duration: Duration = "720h",
    output: Output = None,
    server: Server = None,
    foreman_namespace: ForemanNamespace = NAMESPACE,
) -> None:
    """Give a host its own worker identity: a ServiceAccount that can touch only its FleetNode, the FleetNode, and a
    kubeconfig with a token for it; print the command to run on the host. Safe to repeat (a fresh token each time).

    Example:  foreman node join gpu-01 --accelerator cuda -l pool=research -o gpu-01.kubeconfig
    """
    labels = parse_labels(label) if label else {}
    lifetime = _lifetime(duration)
    path = output or Path(f"{nodes.identity_name(name)}.kubeconfig")
    joined = _run(
        kubeconfig,
        lambda kube: nodes.join(
            kube, name, lifetime=lifetime, kubeconfig_path=str(path), accelerator=accelerator, labels=labels,
            server=server, namespace=foreman_namespace,
        ),
    )  # fmt: skip
    write_private(path, yaml.safe_dump(joined.kubeconfig, sort_keys=False))  # NB: it holds the token
    emit(f"node {name} joined: identity foreman-worker-{name}, token valid until {_until(joined.expires_at)}")
    emit(f"wrote {path} (mode 0600: it holds the token). Copy it to the host and run there:")
    emit(f"  {joined.command}")
    emit(f"Before {_until(joined.expires_at)}: {nodes.node_command('rotate', name, foreman_namespace)}")


@app.command()
@user_errors
def rotate(name: Name, kubeconfig: Kubeconfig = None, duration: Duration = "720h", output: Output = None,
           server: Server = None, foreman_namespace: ForemanNamespace = NAMESPACE) -> None:  # fmt: skip
    """Mint a fresh token for a joined node and rewrite its kubeconfig (restart its worker with it). The old token
    stays valid until it expires; `foreman node leave` revokes every token at once.

    Example:  foreman node rotate gpu-01 -o gpu-01.kubeconfig
    """
    lifetime = _lifetime(duration)
    path = output or Path(f"{nodes.identity_name(name)}.kubeconfig")
    rotated = _run(kubeconfig, lambda kube: nodes.rotate(
        kube, name, lifetime=lifetime, server=server, namespace=foreman_namespace,
    ))  # fmt: skip
    write_private(path, yaml.safe_dump(rotated.kubeconfig, sort_keys=False))
    emit(f"wrote {path}: a token for node {name} valid until {_until(rotated.expires_at)}; restart its worker with it")


@app.command()
@user_errors
def leave(
    name: Name,
    kubeconfig: Kubeconfig = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node to drain.")] = 300.0,
    force: Annotated[bool, typer.Option("--force", help="Delete without waiting for the drain.")] = False,
    foreman_namespace: ForemanNamespace = NAMESPACE,
) -> None:
    """Drain a node (its worker finishes its tasks or hands them back, as on SIGTERM, and exits), then delete its
    identity (every token of it stops working), in --foreman-namespace and wherever its FleetNode says it is, and its
    FleetNode.

    Example:  foreman node leave gpu-01
    """
    deleted = _run(kubeconfig, lambda kube: nodes.leave(
        kube, name, wait_seconds=timeout, force=force, namespace=foreman_namespace,
    ))  # fmt: skip
    emit(f"node {name} left: deleted {', '.join(deleted)}")


def _expiry(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "-"
    left = at - now
    if left <= timedelta(0):
        return f"expired {at:%Y-%m-%d %H:%M}"
    return f"{at:%Y-%m-%d %H:%M} ({f'{left.days}d' if left.days else f'{int(left.total_seconds() // 3600)}h'})"


def node_rows(fleet: list[FleetNode], now: datetime) -> list[tuple[str, ...]]:
    """Each node's phase, the kind of identity its worker acts as, and when that identity's token expires."""
    rows: list[tuple[str, ...]] = [("NAME", "PHASE", "IDENTITY", "TOKEN-EXPIRES", "RUNNING")]
    for node in sorted(fleet, key=lambda n: n.name):
        identity = nodes.identity_shown(node)
        phase = node.status.phase or "-"
        rows.append(
            (
                node.name,
                f"{phase},Leaving" if node.spec.drain else phase,
                identity.kind if identity else "-",
                _expiry(identity.token_expires_at if identity else None, now),
                str(node.status.running_tasks),
            )
        )
    return rows


@app.command("list")
@user_errors
def list_(kubeconfig: Kubeconfig = None, foreman_namespace: ForemanNamespace = NAMESPACE) -> None:
    """Every FleetNode: phase, identity kind (per-node, shared, pod-bound, other) and token expiry; below, each node
    whose own identity lives in another namespace than --foreman-namespace.

    Example:  foreman node list
    """

    async def listed(kube: Kube) -> list[FleetNode]:
        return (await kube.list(FleetNode)).items

    fleet = _run(kubeconfig, listed)
    emit(table(node_rows(fleet, utcnow())))
    hints = (nodes.elsewhere_hint(node, foreman_namespace) for node in sorted(fleet, key=lambda n: n.name))
    for hint in filter(None, hints):
        emit(hint, err=True)
