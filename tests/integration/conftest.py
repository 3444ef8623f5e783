from pathlib import Path

import pytest

from foreman.api.tooling.scripted_llm import demo_repository


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """The demo's git repository (branch main) whose one test fails: what the agent tests fix."""
    return demo_repository(tmp_path / "origin")
