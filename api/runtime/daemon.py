"""What every Foreman daemon shares: JSON logs, SIGTERM handling, interruptible sleeps, its heap's settling (its probes
and metrics are served by foreman.api.runtime.health)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

import structlog


def configure_logging(*, json: bool = True, level: str = "info", file: TextIO | None = None) -> None:
    """structlog everywhere: JSON lines for daemons, readable lines for people at a terminal (stderr by default)."""
    file = file or sys.stderr
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=file.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=file),
        cache_logger_on_first_use=True,
    )


YOUNG_COLLECTION_EVERY = 5_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def settle_heap() -> None:
    """Keep the cyclic garbage collector off what a daemon holds for its whole life; call it when start-up is done.

    NB: start-up objects are frozen and the youngest generation collected 7x less often: the collector's share of
    the CPU fell from 13 % to 5 % (docs/design.md, "Measured").
    """
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 20)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, where the C library is glibc (not macOS's, not musl's: they have none)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the system; return whether this C library can.

    NB: what a burst of work frees (a thousand answers parsed while placing a thousand tasks) stays in the process
    otherwise: glibc gives back only the top of its heap, and a long-lived object above the freed ones pins it. A
    controller holding 1,000 tasks and 1,000 nodes kept 10 MiB of such pages (bench `footprint`); a trim walks the
    heap in a few milliseconds.
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


async def sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when `stop` is set; return whether it was set.

    NB: asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as the event
    is set, and a loop calling it many times a second then never stops (seen in the schedule loop's tests).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


async def run_components(
    stop: asyncio.Event, components: list[Coroutine[Any, Any, None]], *, elector: Coroutine[Any, Any, None] | None
) -> None:
    """Run a daemon's components until `stop` is set; one that fails unexpectedly stops them all (and is raised).

    NB: on the way out the `elector` gets up to 5 s to release its Lease before the rest (the watches it may need)
    is cancelled, so a standby takes over at once instead of after a lease period."""
    running = [asyncio.create_task(component) for component in components]
    electing = asyncio.create_task(elector) if elector is not None else None
    stopped = asyncio.create_task(stop.wait())
    everything = [stopped, *running, *([electing] if electing is not None else [])]
    try:
        done, _ = await asyncio.wait(everything, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopped and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        if electing is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await asyncio.shield(electing)
        for task in everything:
            task.cancel()
        await asyncio.gather(*everything, return_exceptions=True)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop`, so every loop can finish cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
