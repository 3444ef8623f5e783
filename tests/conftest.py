"""Shared fixtures: a real kube-apiserver for the whole session (started once, stopped at the end)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from foreman.api.http.kube import Kube
from foreman.api.tooling.install import install
from foreman.api.tooling.localcluster import Identity, LocalCluster


@pytest.fixture(autouse=True)
def logging_of_its_own() -> Iterator[None]:
    """Each test starts with structlog's defaults. NB: the CLI configures logging for the whole process (quiet, and
    to the stderr of the test that ran it), so a later test reading its logs found none, depending on the order the
    tests ran in (tests/unit before tests/integration)."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """etcd + kube-apiserver on free ports, with Foreman's CRDs and RBAC installed.

    The release is the current one unless FOREMAN_TEST_KUBERNETES names another (`make test` runs the integration
    suite a second time with 1.20, the oldest release we support)."""
    local = LocalCluster.start(
        tmp_path_factory.mktemp("cluster"),
        audit=bool(os.environ.get("FOREMAN_TEST_AUDIT")),
        kubernetes=os.environ.get("FOREMAN_TEST_KUBERNETES") or None,
    )

    async def install_all() -> None:
        async with await Kube.connect(str(local.kubeconfig())) as kube:
            await install(kube)

    try:
        asyncio.run(install_all())
        yield local
    finally:
        local.stop()


@pytest.fixture
async def kube(cluster: LocalCluster) -> AsyncIterator[Kube]:
    async with await Kube.connect(str(cluster.kubeconfig())) as client:
        yield client


@pytest.fixture
def kubeconfig(cluster: LocalCluster) -> Path:
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
