"""A loopback TCP proxy that breaks the connection between our daemons and the apiserver on demand.

TLS passes through untouched (the daemons' kubeconfig points at the proxy; the apiserver's certificate is not
verified on loopback). Faults: added latency per chunk, resetting every open connection, and stalling (open
connections stop forwarding in both directions while staying open: a half-dead network path).
"""

from __future__ import annotations

import asyncio
import contextlib


class FaultyProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.latency = 0.0
        self.stalled = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._stalled_connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def reset(self) -> int:
        """Close every open connection at once (clients see a reset or an unexpected EOF)."""
        closed = len(self._connections)
        for client, upstream in list(self._connections):
            for writer in (client, upstream):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._connections.clear()
        return closed

    def stall(self) -> None:
        """Connections open now go silent for good; new ones work (as after a NAT or firewall drops a flow)."""
        self._stalled_connections = {client for client, _ in self._connections}

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, upstream_writer)
        self._connections.add(pair)
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer, client_writer),
                self._pipe(upstream_reader, client_writer, client_writer),
            )
        finally:
            self._connections.discard(pair)
            for writer in pair:
                writer.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                while client in self._stalled_connections:
                    await asyncio.sleep(0.1)  # hold the data: the connection looks alive but nothing moves
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()
