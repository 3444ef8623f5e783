"""Unit tests are fast and leave nothing running (kopf's habits): each has a 5 s timeout unless it says otherwise
(`@pytest.mark.timeout`: those that run real processes or search exhaustively), and an async test fails when it
leaves an asyncio task behind (a loop not stopped, a background write never awaited)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest

UNIT_TIMEOUT = 5


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function) or "/tests/unit/" not in str(item.path):
            continue
        if item.get_closest_marker("timeout") is None:
            # NB: the function only: the last test of a run also tears down the session's cluster (seconds), whichever
            # test that is, in random order
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT, func_only=True))
        if inspect.iscoroutinefunction(item.obj):
            item.fixturenames.append("no_leaked_tasks")


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    for _ in range(3):  # NB: a task cancelled at the test's end needs a turn of the loop or two to finish
        await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    assert not leaked, f"the test left {len(leaked)} asyncio task(s) running: {[t.get_coro() for t in leaked]}"
