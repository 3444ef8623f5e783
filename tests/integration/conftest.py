import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from foreman.api.http.client import Kube
from foreman.api.tooling.localcluster.cluster import LocalCluster
from foreman.api.tooling.scripted_llm import demo_repository


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """The demo's git repository (branch main) whose one test fails: what the agent tests fix."""
    return demo_repository(tmp_path / "origin")


@pytest.fixture
async def own_cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    """A cluster of the test's own, with nothing installed (the suite's has Foreman installed), of the suite's
    release."""
    release = os.environ.get("FOREMAN_TEST_KUBERNETES") or None
    cluster = await asyncio.to_thread(LocalCluster.start, tmp_path / "own", kubernetes=release)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


@pytest.fixture
async def own_kube(own_cluster: LocalCluster) -> AsyncIterator[Kube]:
    async with await Kube.connect(str(own_cluster.kubeconfig())) as kube:
        yield kube
