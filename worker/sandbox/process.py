"""Start a command and read its output as it comes, keeping only the tail: the worker's memory stays flat whatever
the command prints, and the call returns when the command exits even if something it left holds the pipe."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CHUNK = 64 * 1024
DRAIN_SECONDS = 2.0
"""After the command and its process group are gone: how long its output pipe may stay open (held by a process that
left the group, possible only unconfined) before the rest is dropped."""


class Tail:
    """The last `size` bytes written, and how many there were in all."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.size:
            del self.data[: len(self.data) - self.size]


@dataclass(frozen=True)
class Finished:
    returncode: int | None
    """None: killed at its timeout."""
    output: bytes
    """The tail of stdout and stderr together."""
    total_bytes: int


async def execute(argv: Sequence[str], *, cwd: str, env: Mapping[str, str], time_limit: float, keep: int) -> Finished:
    """Run argv to its end or its timeout; a cancel (the task's timeout, `spec.cancel`, a drain) kills it too. The
    whole process group is killed when the command ends, whichever way."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _Watched(loop), *argv, cwd=cwd, env=dict(env),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group: what it leaves behind is killed with it
    )  # fmt: skip
    tail = Tail(keep)
    assert protocol.stdout is not None
    reader = asyncio.create_task(_pump(protocol.stdout, tail))
    pid = transport.get_pid()
    timed_out = False
    try:
        # NB: asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel (a drain, `spec.cancel`) that comes
        # as the command ends, and the agent would go on to its next turn.
        async with asyncio.timeout(time_limit):
            await asyncio.shield(protocol.exited)
    except TimeoutError:
        timed_out = True
    finally:
        kill_group(pid)
        try:
            await asyncio.shield(protocol.exited)
            async with asyncio.timeout(DRAIN_SECONDS):
                await asyncio.shield(reader)
        except TimeoutError:
            reader.cancel()
        except asyncio.CancelledError:
            reader.cancel()
            raise
        finally:
            transport.close()
    return Finished(None if timed_out else transport.get_returncode(), bytes(tail.data), tail.total)


class _Watched(asyncio.subprocess.SubprocessStreamProtocol):
    """Tells when the process exits. NB: asyncio's Process.wait() answers only once its pipes are closed too, so a
    child that holds stdout would hold the command's end to its timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=CHUNK, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _pump(stream: asyncio.StreamReader, tail: Tail) -> None:
    while chunk := await stream.read(CHUNK):
        tail.add(chunk)


def kill_group(pid: int) -> None:
    """SIGKILL a process group, if anything of it is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
