"""The probes' and metrics' server: what a kubelet and Prometheus send, answered as HTTP/1.1 says, and clients that
send too much, too little or too slowly let go of."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from foreman.api.runtime.health import MAX_HEAD, HealthServer, request_line
from foreman.controller.metrics import ControllerMetrics


@asynccontextmanager
async def serving(*, ready: bool = True, read_timeout: float = 10.0) -> AsyncIterator[HealthServer]:
    metrics = ControllerMetrics()
    metrics.leader.set(1)
    server = HealthServer(metrics.registry, healthy=lambda: True, ready=lambda: ready, read_timeout=read_timeout)
    await server.start(0, host="127.0.0.1")
    try:
        yield server
    finally:
        await server.stop()


async def exchange(server: HealthServer, sent: bytes) -> bytes:
    """Everything the server writes back to `sent` before it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(sent)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_probes_and_metrics_answer_a_real_http_client() -> None:
    async with serving(ready=False) as server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}"
        healthz = (await session.get(f"{base}/healthz")).status
        readyz = await session.get(f"{base}/readyz")
        metrics = await session.get(f"{base}/metrics?name[]=foreman_leader")
        text = await metrics.text()
    assert (healthz, readyz.status, await readyz.text()) == (200, 503, "not ok")
    assert metrics.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert "foreman_leader 1.0" in text
    assert "foreman_reconcile_errors_total 0.0" in text
    assert "_created" not in text  # a second series per counter that nobody reads


@pytest.mark.parametrize(
    ("sent", "starts", "body"),
    [
        (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK\r\n", b""),
        (b"GET /nowhere HTTP/1.1\r\n\r\n", b"HTTP/1.1 404 Not Found\r\n", b"not found"),
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed\r\n", b""),
        (b"GET /healthz\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n", b"bad request"),
        (b"\x16\x03\x01\x02\x00\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n", b"bad request"),  # TLS to a plain port
    ],
)
async def test_each_request_gets_one_answer_and_the_connection_closes(sent: bytes, starts: bytes, body: bytes) -> None:
    async with serving() as server:
        answer = await exchange(server, sent)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert answer.startswith(starts)
    assert rest == body
    assert b"Connection: close" in head
    assert b"Content-Length: 2" in head if sent.startswith(b"HEAD") else f"Content-Length: {len(body)}".encode() in head
    assert (b"Allow: GET, HEAD" in head) == sent.startswith(b"POST")


async def test_a_head_past_the_limit_or_a_silent_client_is_let_go_without_an_answer() -> None:
    async with serving(read_timeout=0.05) as server:
        too_long = b"GET /healthz HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n"
        assert await exchange(server, too_long) == b""
        assert await exchange(server, b"GET /healthz HTTP/1.1\r\n") == b""  # never ends its head: dropped


def test_the_request_line_is_read_strictly() -> None:
    assert request_line(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") == ("GET", "/metrics")
    assert request_line(b"GET /readyz HTTP/1.0\r\n\r\n") == ("GET", "/readyz")
    assert request_line(b"GET http://a/readyz HTTP/1.1\r\n\r\n") is None
    assert request_line(b"GET /readyz HTTP/2\r\n\r\n") is None
    assert request_line(b"GET  /readyz HTTP/1.1\r\n\r\n") is None
    assert request_line(b"\r\n\r\n") is None
