"""The HTTP session under `Kube`: no netrc or proxy lookup per request (each was a worker-thread hop)."""

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from foreman.api.http.client import Kube, Relisted
from foreman.api.http.k8sclient import Configuration
from foreman.api.http.requests import Request
from foreman.api.models.nodes import FleetNode


def configuration(host: str = "https://10.0.0.1:6443") -> Configuration:
    config = Configuration()
    config.host = host
    return config


async def test_the_session_does_not_consult_the_environment_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    async with Kube(configuration()) as kube:
        assert kube._api.rest_client.pool_manager.trust_env is False
        assert not kube._api.rest_client.proxy


async def test_a_proxy_from_the_environment_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    async with Kube(configuration()) as kube:
        rest = kube._api.rest_client
        assert rest.proxy == "http://proxy.example:3128"
        assert rest.proxy_headers["Proxy-Authorization"].startswith("Basic ")
    async with Kube(configuration("https://api.internal.example:6443")) as kube:
        assert not kube._api.rest_client.proxy


async def test_a_list_reads_every_page_and_keeps_the_snapshots_version(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = {
        None: {"items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "t1", "resourceVersion": "9"}},
        "t1": {"items": [{"metadata": {"name": "b"}}], "metadata": {"resourceVersion": "9"}},
    }
    asked: list[str | None] = []

    async def send(request: Request) -> Any:
        asked.append(request.query.get("continue"))
        return pages[request.query.get("continue")]

    async with Kube(configuration()) as kube:
        monkeypatch.setattr(kube, "_send", send)
        listing = await kube.list(FleetNode)
    assert asked == [None, "t1"]
    assert ([node.name for node in listing.items], listing.resource_version) == (["a", "b"], "9")


async def test_a_watch_keeps_no_copy_of_its_listing_once_it_is_watching(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller keeps the listed objects (the controller's cache, which replaces them as they change); a watch
    that held the listing too kept every object's first copy for as long as it ran."""
    listing = {"items": [{"metadata": {"name": "a"}}], "metadata": {"resourceVersion": "9"}}
    streaming = asyncio.Event()

    async def send(request: Request) -> Any:
        return listing

    async def stream(request: Request, timeout_seconds: int) -> AsyncIterator[bytes]:
        streaming.set()
        await asyncio.Event().wait()
        yield b""  # pragma: no cover

    async with Kube(configuration()) as kube:
        monkeypatch.setattr(kube, "_send", send)
        monkeypatch.setattr(kube, "_stream", stream)
        watch = kube.watch(FleetNode)
        listed = await anext(watch)
        assert isinstance(listed, Relisted)
        first = weakref.ref(listed)
        del listed
        following = asyncio.create_task(anext(watch))
        await streaming.wait()
        gc.collect()
        assert first() is None
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await watch.aclose()
