"""`/healthz`, `/readyz` and `/metrics` (Prometheus text) on one port, for the kubelet's probes and a scraper.

NB: served on asyncio's own streams, not aiohttp's server: a daemon answers three GETs with a few bytes each, and
aiohttp's server is 2 MiB of every daemon's memory for that (its client, which the daemons need, does not load it).
One request per connection (`Connection: close`), which is what probes and Prometheus send anyway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

MAX_HEAD = 8192
"""Bytes of request line and headers a client may send; a probe sends a few hundred."""


@dataclass(frozen=True)
class Answer:
    status: HTTPStatus
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, *, with_body: bool = True) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status.value} {self.status.phrase}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (self.body if with_body else b"")


def request_line(head: bytes) -> tuple[str, str] | None:
    """(method, path without its query) of a request's head; None where it is no HTTP/1.x request line."""
    first = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = first.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return None
    return parts[0], parts[1].split("?", 1)[0]


def probe(ok: bool) -> Answer:
    return Answer(HTTPStatus.OK, b"ok") if ok else Answer(HTTPStatus.SERVICE_UNAVAILABLE, b"not ok")


class HealthServer:
    """The daemon's probes and metrics: `healthy` answers /healthz, `ready` /readyz, `registry` /metrics."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        read_timeout: float = 10.0,
    ):
        # NB: a `_created` series per counter and histogram doubles what is scraped and says nothing we use
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.healthy = healthy
        self.ready = ready
        self.read_timeout = read_timeout
        """How long a client may take to send its request (one that never does holds no connection for ever)."""
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int, host: str = "0.0.0.0") -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def answer(self, method: str, path: str) -> Answer:
        if method not in ("GET", "HEAD"):
            return Answer(HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": "GET, HEAD"})
        if path == "/healthz":
            return probe(self.healthy())
        if path == "/readyz":
            return probe(self.ready())
        if path == "/metrics":
            return Answer(HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        return Answer(HTTPStatus.NOT_FOUND, b"not found")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(self.read_timeout):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError):
                return  # NB: gone, too long or too slow: nobody to answer, or nothing worth answering
            asked = request_line(head)
            if asked is None:
                writer.write(Answer(HTTPStatus.BAD_REQUEST, b"bad request").encode())
            else:
                method, path = asked
                writer.write(self.answer(method, path).encode(with_body=method != "HEAD"))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
