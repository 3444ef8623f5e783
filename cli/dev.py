"""`foreman dev up|down|status`: a real local control plane for people without a cluster."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from foreman.api.http.client import Kube
from foreman.api.tooling.install import install
from foreman.api.tooling.localcluster import LocalCluster
from foreman.cli.errors import user_errors
from foreman.cli.terminal import emit

app = typer.Typer(help="Run a local Kubernetes control plane (etcd + kube-apiserver) with Foreman installed.")

StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir", envvar="FOREMAN_DEV_DIR", help="Where the control plane keeps its data and kubeconfig."
    ),
]
KubernetesVersion = Annotated[
    str | None,
    typer.Option(
        "--kubernetes-version",
        envvar="FOREMAN_KUBERNETES_VERSION",
        help="The kube-apiserver release to run: 1.20 (the oldest supported), a full release such as 1.34.4 (built "
        "on first use), or a minor already built. Default: the current one pinned by this version of Foreman.",
        show_default=False,
    ),
]
DEFAULT_STATE_DIR = Path(os.path.expanduser("~/.foreman/dev"))


def _progress(message: str) -> None:
    typer.secho(message, fg=typer.colors.BRIGHT_BLACK, err=True)


async def _install(kubeconfig: Path) -> None:
    async with await Kube.connect(str(kubeconfig)) as kube:
        await install(kube)


@app.command()
@user_errors
def up(state_dir: StateDir = DEFAULT_STATE_DIR, kubernetes_version: KubernetesVersion = None) -> None:
    """Start etcd and kube-apiserver on free loopback ports and install Foreman's CRDs and RBAC.

    The first run of a release builds its kube-apiserver (the current one with Go, ~10 minutes; 1.20 from Debian's
    source package, a few minutes); later runs start in seconds.

    Example:  foreman dev up && export KUBECONFIG=~/.foreman/dev/kubeconfig;  foreman dev up --kubernetes-version 1.20
    """
    existing = LocalCluster.load(state_dir)
    if existing and existing.running("apiserver"):
        emit(f"already running at {existing.server}; kubeconfig: {existing.kubeconfig()}")
        return
    cluster = LocalCluster.start(state_dir, kubernetes=kubernetes_version, progress=_progress)
    _progress("installing CRDs and RBAC")
    asyncio.run(_install(cluster.kubeconfig()))
    emit(f"control plane (Kubernetes v{cluster.kubernetes}) ready at {cluster.server}")
    emit(f"export KUBECONFIG={cluster.kubeconfig()}")


@app.command()
@user_errors
def down(
    state_dir: StateDir = DEFAULT_STATE_DIR,
    purge: Annotated[bool, typer.Option(help="Also delete the data (all tasks and nodes).")] = False,
) -> None:
    """Stop the local control plane (SIGTERM, then SIGKILL after 15 s). Its ports and tokens are kept for the next
    `foreman dev up`, so running daemons and kubeconfigs reach it again; --purge forgets them and the data.

    Example:  foreman dev down;  foreman dev down --purge
    """
    cluster = LocalCluster.load(state_dir)
    if cluster is None or not (cluster.running("apiserver") or cluster.running("etcd")):
        emit("not running")
    else:
        _progress(f"stopping kube-apiserver ({cluster.server}) and etcd (up to 15 s each)")
        cluster.stop()
        emit("stopped")
    if purge and state_dir.exists():
        import shutil

        shutil.rmtree(state_dir)


@app.command()
@user_errors
def status(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Say whether the local control plane runs, where, and which kubeconfig reaches it (exit 1 when it does not).

    Example:  foreman dev status
    """
    cluster = LocalCluster.load(state_dir)
    if cluster is None or not cluster.running("apiserver"):
        emit("not running (start it with `foreman dev up`)")
        raise typer.Exit(1)
    release = f" (Kubernetes v{cluster.kubernetes})" if cluster.kubernetes else ""
    emit(f"running at {cluster.server}{release}; kubeconfig: {cluster.kubeconfig()}")
