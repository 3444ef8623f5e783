"""The seam under `Kube`: one prepared Request sent, its status and body answered (a watch's body line by line).

Everything above it is `Kube`'s (the retry policy, error mapping, decoding, typed parsing); `ApiClientTransport` is the
real one, kubernetes-asyncio's aiohttp session that signs requests with the kubeconfig's or the pod's credentials.
Unit tests put an in-memory apiserver here (tests/fakekube.py), so they run the real verbs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from foreman.api.http import k8sclient, requests
from foreman.api.http.errors import Unreachable
from foreman.api.http.requests import Request


class Answer(NamedTuple):
    status: int
    body: bytes


@dataclass(frozen=True)
class ServerTrust:
    server: str
    verifies: bool
    """False: the kubeconfig skips TLS verification (insecure-skip-tls-verify)."""
    certificate_authority: bytes | None
    """The CA bundle (PEM) it verifies the server with; none: the system's trust store (or no verification)."""


@dataclass(frozen=True)
class Streamed:
    """An answer read as it comes, line by line (a watch); an error's body comes the same way."""

    status: int
    lines: AsyncIterator[bytes]


class Transport(Protocol):
    """Sends prepared requests to one apiserver as one identity; raises Unreachable when no HTTP answer came."""

    @property
    def server(self) -> str:
        """The apiserver's URL."""
        ...

    @property
    def bearer_token(self) -> str | None:
        """The token requests carry (none: other credentials): the worker reads its identity and expiry off it."""
        ...

    def server_trust(self) -> ServerTrust:
        """How the apiserver is trusted: for a kubeconfig that lets another host reach it the same way."""
        ...

    async def send(self, request: Request, *, within: float) -> Answer:
        """The whole answer, within `within` seconds."""
        ...

    def stream(self, request: Request, *, silence: float) -> AbstractAsyncContextManager[Streamed]:
        """The answer, open while the context is; a silence of `silence` seconds between two lines is Unreachable."""
        ...

    async def close(self) -> None: ...


def _no_per_request_environment_lookups(api: Any) -> None:
    """kubernetes-asyncio opens its aiohttp session with trust_env=True: a ~/.netrc and proxy lookup in a thread per
    request (~20 % of throughput, docs/design.md "Measured"). The API server does not change, so look its proxy up
    once, here, and switch the per-request lookups off (netrc never applies: requests carry a token or certificate)."""
    rest = api.rest_client
    if not rest.proxy:
        with contextlib.suppress(LookupError):
            proxy, auth = get_env_proxy_for_url(URL(api.configuration.host))
            rest.proxy = str(proxy)
            if auth is not None:
                rest.proxy_headers = {**(rest.proxy_headers or {}), "Proxy-Authorization": auth.encode()}
    rest.pool_manager._trust_env = False  # NB: a read-only property; tests/unit checks that this still takes effect


class ApiClientTransport:
    """kubernetes-asyncio's ApiClient: configuration loading (exec plugins, token refresh, client certificates) and
    the aiohttp session; nothing of its generated API."""

    def __init__(self, configuration: Any):
        self._api = k8sclient.ApiClient(configuration=configuration)
        self._api.user_agent = requests.USER_AGENT
        _no_per_request_environment_lookups(self._api)

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    @property
    def bearer_token(self) -> str | None:
        value = (self._api.configuration.api_key or {}).get("BearerToken")
        return value.removeprefix("Bearer ").strip() if isinstance(value, str) else None

    def server_trust(self) -> ServerTrust:
        configuration = self._api.configuration
        ca = configuration.ssl_ca_cert
        return ServerTrust(
            server=self.server,
            verifies=bool(configuration.verify_ssl),
            certificate_authority=Path(ca).read_bytes() if configuration.verify_ssl and ca else None,
        )

    async def close(self) -> None:
        await self._api.close()

    async def _open(self, request: Request, limits: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                request.path,
                request.method,
                query_params=list(request.query.items()),
                header_params={"Content-Type": request.content_type, "Accept": "application/json"},
                body=request.body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=limits,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise Unreachable(f"{request.method} {request.path}: {error or type(error).__name__}") from error
        return response

    async def send(self, request: Request, *, within: float) -> Answer:
        response = await self._open(request, aiohttp.ClientTimeout(total=within))
        try:
            return Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Unreachable(f"{request.method} {request.path}: {error}") from error
        finally:
            response.release()

    @asynccontextmanager
    async def stream(self, request: Request, *, silence: float) -> AsyncIterator[Streamed]:
        # NB: sock_read bounds the silence between two chunks
        response = await self._open(request, aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=silence))
        try:
            yield Streamed(response.status, _lines(request, response))
        finally:
            response.release()


async def _lines(request: Request, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for line in response.content:
            yield line
    except (aiohttp.ClientError, TimeoutError) as error:
        raise Unreachable(f"watch {request.path}: {error or type(error).__name__}") from error
