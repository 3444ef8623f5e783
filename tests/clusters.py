"""The cluster the integration and fault suites run against, got through pytest-kubernetes' provider managers.

By default the suites start our own control plane (api/tooling/localcluster: seconds, no Docker) and hand it to
pytest-kubernetes as an already-running cluster (its `external` provider); `--k8s-provider kind` or `k3d` has
pytest-kubernetes create a real cluster instead (a Docker engine needed), and `--k8s-provider external --k8s-kubeconfig
PATH` takes any cluster an admin kubeconfig reaches. The tests see one `Cluster` either way: a kubeconfig for each of
our identities (static tokens on our control plane, TokenRequest tokens of the ServiceAccounts `foreman install`
makes elsewhere) and, on our own control plane only, its processes (`local`), which fault tests stop and start.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from pytest_kubernetes.providers.base import AClusterManager

from foreman.api.http.client import Kube
from foreman.api.tooling.localcluster import Identity, LocalCluster
from foreman.api.tooling.localcluster.cluster import USERS
from foreman.api.tooling.manifests import NAMESPACE
from tests.tokens import kubeconfig_with_token, service_account_token

CREATED_BY_PYTEST_KUBERNETES = ("k3d", "kind", "minikube", "minikube-docker", "minikube-kvm2")
"""Providers whose cluster pytest-kubernetes creates (and deletes at the end unless it was already there)."""
BINARY = {"k3d": "k3d", "kind": "kind"}
"""The tool each creating provider runs; minikube's providers run `minikube`."""
READY_TIMEOUT_S = 300
"""How long a created cluster may take to answer /readyz and have its default ServiceAccount (image pulls included)."""


@dataclass
class Cluster:
    """What a test may use of the cluster: kubeconfigs per identity, the tokens in them, the manager that provided it
    (kubectl, version), and our control plane's processes when it is ours."""

    manager: AClusterManager
    kubeconfigs: dict[Identity, Path]
    tokens: dict[str, str]
    local: LocalCluster | None

    def kubeconfig(self, identity: Identity = Identity.ADMIN) -> Path:
        return self.kubeconfigs[identity]

    @property
    def server(self) -> str:
        config = yaml.safe_load(self.kubeconfig().read_text())
        server: str = config["clusters"][0]["cluster"]["server"]
        return server

    @property
    def apiserver_port(self) -> int:
        """The port in the server's address (tests point a copy of a kubeconfig elsewhere by replacing it)."""
        port = urlparse(self.server).port
        assert port is not None, f"{self.server} names no port"
        return port


def binary_of(provider: str) -> str:
    return BINARY.get(provider, "minikube")


def check_provider(provider: str | None) -> None:
    """A provider whose tool is missing is one line at start-up, not an error in every test (pytest-kubernetes itself
    says "Executable not found" from inside the first fixture)."""
    if provider in CREATED_BY_PYTEST_KUBERNETES and not shutil.which(binary_of(provider)):
        raise pytest.UsageError(
            f"--k8s-provider {provider}: `{binary_of(provider)}` is not on PATH (it and a Docker engine are needed; "
            "without them, leave --k8s-provider out to run on the local control plane)"
        )


def create(manager: AClusterManager, provider: str) -> None:
    """Have pytest-kubernetes create (or find) the cluster; the tool's own last words when it cannot (no Docker
    engine, an image that does not exist)."""
    try:
        manager.create(timeout=READY_TIMEOUT_S)
    except subprocess.CalledProcessError as error:
        said = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        pytest.exit(f"--k8s-provider {provider}: {said[-1] if said else error}", returncode=pytest.ExitCode.USAGE_ERROR)


def local(manager: AClusterManager, control_plane: LocalCluster) -> Cluster:
    """Our control plane, already running: its static tokens are the identities."""
    kubeconfigs = {identity: control_plane.kubeconfig(identity) for identity in Identity}
    return Cluster(manager, kubeconfigs, dict(control_plane.tokens), control_plane)


async def provided(manager: AClusterManager, directory: Path) -> Cluster:
    """A cluster we did not start: each identity becomes a ServiceAccount token (created with its ServiceAccount where
    `foreman install` makes none: the pinned worker's, whose roles its tests apply, and nobody's, which has none).
    Call after `foreman install`."""
    admin = manager.kubeconfig
    assert admin is not None, "the provider wrote no kubeconfig"
    kubeconfigs, tokens = {Identity.ADMIN: admin}, {}
    async with await Kube.connect(str(admin)) as kube:
        for identity in Identity:
            if identity is Identity.ADMIN:
                continue
            user = USERS[identity][0]
            namespace, name = user.split(":")[2:] if user.startswith("system:serviceaccount:") else (NAMESPACE, user)
            await kube.apply(
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
            )
            token = await service_account_token(kube, namespace, name)
            tokens[identity.value] = token
            kubeconfigs[identity] = kubeconfig_with_token(admin, token, directory / f"kubeconfig-{identity.value}")
    return Cluster(manager, kubeconfigs, tokens, None)
