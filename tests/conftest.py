"""Shared fixtures: a real cluster for the whole session (by default our kube-apiserver, started once, stopped at the
end), got through pytest-kubernetes (tests/clusters.py)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from foreman.api.http.client import Kube
from foreman.api.tooling.install import install
from foreman.api.tooling.localcluster import Identity, LocalCluster
from tests import clusters


@pytest.fixture(autouse=True)
def logging_of_its_own() -> Iterator[None]:
    """Each test starts with structlog's defaults. NB: the CLI configures logging for the whole process (quiet, and
    to the stderr of the test that ran it), so a later test reading its logs found none, depending on the order the
    tests ran in (tests/unit before tests/integration)."""
    yield
    structlog.reset_defaults()


def pytest_configure(config: pytest.Config) -> None:
    clusters.check_provider(config.getoption("k8s_provider"))


@pytest.fixture(scope="session")
def cluster(
    request: pytest.FixtureRequest, k8s_manager: Callable[[str | None], Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[clusters.Cluster]:
    """The cluster of the integration and fault suites, with Foreman's CRDs, RBAC and policy installed, through
    pytest-kubernetes (tests/clusters.py).

    Without `--k8s-provider` (or `--k8s-kubeconfig`): etcd + kube-apiserver on free ports, as an already-running
    cluster. Its release is the current one unless FOREMAN_TEST_KUBERNETES names another (`make test` runs the
    integration suite a second time with 1.20, the oldest release we support)."""
    provider = request.config.getoption("k8s_provider")
    external = provider == "external" or (provider is None and request.config.getoption("k8s_kubeconfig"))
    directory = tmp_path_factory.mktemp("cluster")
    control_plane = None
    if external:
        manager = k8s_manager("external")(None, None, request.config.getoption("k8s_kubeconfig"))
    elif provider is None:
        control_plane = LocalCluster.start(
            directory,
            audit=bool(os.environ.get("FOREMAN_TEST_AUDIT")),
            kubernetes=os.environ.get("FOREMAN_TEST_KUBERNETES") or None,
        )
        manager = k8s_manager("external")(None, None, control_plane.kubeconfig())
    else:
        manager = k8s_manager(provider)(request.config.getoption("k8s_cluster_name"))
        clusters.create(manager, provider)

    async def install_all() -> clusters.Cluster:
        async with await Kube.connect(str(manager.kubeconfig)) as kube:
            await install(kube)
        if control_plane is not None:
            return clusters.local(manager, control_plane)
        return await clusters.provided(manager, directory)

    try:
        yield asyncio.run(install_all())
    finally:
        if control_plane is not None:
            control_plane.stop()
        elif not external:
            manager.delete()  # NB: never an external one's: pytest-kubernetes would delete its kubeconfig file


@pytest.fixture
def local_cluster(cluster: clusters.Cluster) -> LocalCluster:
    """Our own control plane, for tests that stop and start its processes or read its files."""
    if cluster.local is None:
        pytest.skip("needs the local control plane (its processes or files): runs without --k8s-provider only")
    return cluster.local


@pytest.fixture
async def kube(cluster: clusters.Cluster) -> AsyncIterator[Kube]:
    async with await Kube.connect(str(cluster.kubeconfig())) as client:
        yield client


@pytest.fixture
def kubeconfig(cluster: clusters.Cluster) -> Path:
    return cluster.kubeconfig(Identity.ADMIN)


@pytest.fixture
async def namespace(kube: Kube) -> str:
    """A fresh namespace per test, so tests never see each other's tasks (no namespace GC here: left behind)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.fault import report

    if report.ROWS:
        terminalreporter.write_sep("-", "fault scenarios" + (" (soak size)" if report.SOAK else " (CI size)"))
        terminalreporter.write_line(report.render())
