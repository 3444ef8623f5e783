"""Publishing the transcript without making the agent wait for the apiserver."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

_in_flight: set[asyncio.Task[None]] = set()
"""Writers still running, held here so that one outliving its task's executor (a cancel) is not collected."""


class Publisher:
    """Writes the latest text in the background: at most one write in flight, and a text superseded while a write
    was under way is skipped (the next write carries everything). A turn never waits for the apiserver; `flush`
    waits for the last text offered."""

    def __init__(self, write: Callable[[str], Awaitable[None]] | None):
        self._write = write
        self._pending: str | None = None
        self._writer: asyncio.Task[None] | None = None

    def offer(self, text: str) -> None:
        if self._write is None:
            return
        self._pending = text
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
            _in_flight.add(self._writer)
            self._writer.add_done_callback(_in_flight.discard)

    async def flush(self) -> None:
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        assert self._write is not None
        while self._pending is not None:
            text, self._pending = self._pending, None
            await self._write(text)
