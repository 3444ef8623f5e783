"""`Kube` above its transport: the HTTP session under it (no netrc or proxy lookup per request, each was a
worker-thread hop), and its own policy over the in-memory apiserver: what it retries, how a watch relists."""

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest

from foreman.api.http.client import Kube, Relisted, RetryPolicy
from foreman.api.http.errors import Conflict, ServerError
from foreman.api.http.k8sclient import Configuration
from foreman.api.http.requests import Request
from foreman.api.http.transport import ApiClientTransport
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from tests.fakekube import FakeApiserver, kube_over


def configuration(host: str = "https://10.0.0.1:6443") -> Configuration:
    config = Configuration()
    config.host = host
    return config


async def test_the_session_does_not_consult_the_environment_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    async with Kube(transport := ApiClientTransport(configuration())):
        assert transport._api.rest_client.pool_manager.trust_env is False
        assert not transport._api.rest_client.proxy


async def test_a_proxy_from_the_environment_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    async with Kube(transport := ApiClientTransport(configuration())):
        rest = transport._api.rest_client
        assert rest.proxy == "http://proxy.example:3128"
        assert rest.proxy_headers["Proxy-Authorization"].startswith("Basic ")
    async with Kube(transport := ApiClientTransport(configuration("https://api.internal.example:6443"))):
        assert not transport._api.rest_client.proxy


async def test_a_list_reads_every_page_and_keeps_the_snapshots_version(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = {
        None: {"items": [{"metadata": {"name": "a"}}], "metadata": {"continue": "t1", "resourceVersion": "9"}},
        "t1": {"items": [{"metadata": {"name": "b"}}], "metadata": {"resourceVersion": "9"}},
    }
    asked: list[str | None] = []

    async def send(request: Request) -> Any:
        asked.append(request.query.get("continue"))
        return pages[request.query.get("continue")]

    kube = kube_over(FakeApiserver())
    monkeypatch.setattr(kube, "_send", send)
    listing = await kube.list(FleetNode)
    assert asked == [None, "t1"]
    assert ([node.name for node in listing.items], listing.resource_version) == (["a", "b"], "9")


async def test_a_server_error_is_retried_and_a_conflict_is_not() -> None:
    api = FakeApiserver()
    api.put(AgenticTask.new("t", namespace="ns"))
    kube = kube_over(api, retry=RetryPolicy(initial_wait=0.001, max_wait=0.001))
    api.refuse["t"] = [ServerError("etcd timeout", status=500)]
    written = await kube.patch_status(AgenticTask, "t", {"phase": "Scheduled"}, namespace="ns")
    assert (written.phase, len(api.status_writes), kube.consecutive_failures) == ("Scheduled", 2, 0)
    api.refuse["t"] = [Conflict("changed meanwhile", status=409)]
    with pytest.raises(Conflict, match="changed meanwhile"):
        await kube.patch_status(AgenticTask, "t", {"phase": "Running"}, namespace="ns")
    assert len(api.status_writes) == 3
    with pytest.raises(Conflict, match="the object has been modified"):  # the precondition, as the apiserver says it
        await kube.patch_status(AgenticTask, "t", {"phase": "Running"}, namespace="ns", resource_version="1")


async def test_a_watch_whose_version_the_server_forgot_relists() -> None:
    api = FakeApiserver()
    kube = kube_over(api)
    watch = kube.watch(AgenticTask, namespace="ns")
    first = await anext(watch)
    assert isinstance(first, Relisted)
    assert first.items == []
    await kube.create(AgenticTask.new("t", namespace="ns"))
    api.forget_history()  # the stream opens from the listed version: 410 Gone
    again = await anext(watch)
    await watch.aclose()  # type: ignore[attr-defined]  # NB: an async generator
    assert isinstance(again, Relisted)
    assert [task.name for task in again.items] == ["t"]


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

    async with kube_over(FakeApiserver()) as kube:
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
