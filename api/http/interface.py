"""What the daemons ask of the Kubernetes API, as a protocol: `foreman.api.http.client.Kube` is the real one
(integration tests run it against a real kube-apiserver); a loop's own logic (waking, requeueing, conflicts) can be
tested against an in-memory one in milliseconds (tests/fakekube.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol, TypeVar

from foreman.api.http.client import Listing, Relisted, WatchEvent
from foreman.api.http.features import Release
from foreman.api.models.base import Resource
from foreman.api.models.lease import Lease

R = TypeVar("R", bound=Resource)


class KubeApi(Protocol):
    consecutive_failures: int
    """API calls in a row that got no usable answer; 0 after any success (health)."""

    @property
    def bearer_token(self) -> str | None:
        """The token the client presents (none: other credentials): the worker reads its identity and expiry off it."""
        ...

    async def get(self, model: type[R], name: str, namespace: str | None = None) -> R: ...

    async def list(
        self,
        model: type[R],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        cached: bool = False,
    ) -> Listing[R]: ...

    async def create(self, obj: R) -> R: ...

    async def patch(
        self,
        model: type[R],
        name: str,
        patch: dict[str, Any],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        subresource: str | None = None,
    ) -> R: ...

    async def patch_status(
        self,
        model: type[R],
        name: str,
        status: dict[str, Any],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
    ) -> R: ...

    async def delete(
        self,
        model: type[R],
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> None: ...

    async def get_raw(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    async def delete_raw(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> None: ...

    def watch(
        self,
        model: type[R],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 60,
        max_backoff: float = 5.0,
        listed: Listing[R] | None = None,
    ) -> AsyncIterator[WatchEvent[R] | Relisted[R]]: ...

    def watch_raw(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 60,
        max_backoff: float = 5.0,
    ) -> AsyncIterator[WatchEvent[dict[str, Any]] | Relisted[dict[str, Any]]]: ...

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]: ...

    async def server_version(self) -> Release:
        """The apiserver's release: what it offers (field selectors on our resources, CEL) depends on it."""
        ...

    async def get_lease(self, name: str, namespace: str) -> Lease: ...

    async def create_lease(self, lease: Lease) -> Lease: ...

    async def replace_lease(self, lease: Lease) -> Lease: ...

    async def emit_event(
        self,
        obj: Resource,
        *,
        reason: str,
        message: str,
        component: str,
        type: Literal["Normal", "Warning"] = "Normal",
    ) -> None: ...
