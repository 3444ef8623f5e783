"""A real HTTP receiver of Foreman's deliveries, as the services we do not ship would receive them.

`/hook` verifies the Standard Webhooks signature with the `standardwebhooks` package (what a receiver in any language
does with its library), `/events` parses a CloudEvent in binary mode with the `cloudevents` SDK, `/apprise` takes
what Apprise's json:// sends. Every request is counted, valid or not; `script` says how the next requests are
answered (a status, or a delay past the sender's timeout), so the fault tests can make it fail as receivers do;
`stop` and `start` take it down and bring it back on the same port.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_binary_event
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    path: str
    id: str | None
    """webhook-id or the CloudEvent id (None for Apprise, which has no idempotency key)."""
    body: Any
    headers: dict[str, str]
    answered: int


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0


@dataclass
class Receiver:
    signing_secret: str
    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: deque[Answer] = field(default_factory=deque)
    """How the next requests are answered, first to last; once empty, 200 at once."""
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/events", self._event)
        app.router.add_post("/apprise", self._apprise)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def delivered(self, path: str) -> list[Received]:
        """What the receiver took (answered 2xx), for one endpoint."""
        return [r for r in self.received if r.path == path and r.answered < 300]

    async def _answer(self, request: web.Request, id: str | None, body: Any) -> web.Response:
        answer = self.script.popleft() if self.script else Answer()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        self.received.append(Received(request.path, id, body, dict(request.headers), answer.status))
        return web.Response(status=answer.status, text="ok" if answer.status < 300 else f"scripted {answer.status}")

    async def _hook(self, request: web.Request) -> web.Response:
        data = await request.read()
        try:
            body = Webhook(self.signing_secret).verify(data, dict(request.headers))
        except WebhookVerificationError as error:
            self.received.append(Received(request.path, request.headers.get("webhook-id"), None, {}, 401))
            return web.Response(status=401, text=str(error))
        return await self._answer(request, request.headers["webhook-id"], body)

    async def _event(self, request: web.Request) -> web.Response:
        event = from_binary_event(HTTPMessage(headers=dict(request.headers), body=await request.read()))
        return await self._answer(request, event.get_id(), {**event.get_attributes(), "data": event.get_data()})

    async def _apprise(self, request: web.Request) -> web.Response:
        return await self._answer(request, None, json.loads(await request.read()))
