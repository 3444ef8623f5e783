"""An in-memory Kubernetes API for tests of a loop's own logic (waking, requeueing, conflicts): milliseconds, no
apiserver. It keeps objects, resourceVersions, merge patches with their precondition, and watches (a list, then
events); `hold` keeps one resource's first list back, as a slow cache sync does. Anything about the real API's
behaviour belongs in tests/integration against the real kube-apiserver."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal, TypeVar

from foreman.api.http.client import Listing, Relisted, WatchEvent
from foreman.api.http.errors import AlreadyExists, ApiError, Conflict, NotFound
from foreman.api.http.features import Release
from foreman.api.models.base import Resource, utcnow, wire_time
from foreman.api.models.lease import Lease

R = TypeVar("R", bound=Resource)
Stored = dict[tuple[str, str], dict[str, Any]]


def merged(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


class FakeKube:
    def __init__(self) -> None:
        self.consecutive_failures = 0
        self.bearer_token: str | None = None
        self.release = Release(1, 20)
        """The release it answers as: v1.20 by default (workers select their tasks by the node label)."""
        self.objects: dict[str, Stored] = {}
        self.events: list[tuple[str, str, str]] = []
        """(object name, reason, type) of each Event emitted."""
        self.status_writes: list[tuple[str, dict[str, Any]]] = []
        """(object name, status patch) of each status write tried, refused ones included."""
        self.refuse: dict[str, list[ApiError]] = {}
        """Errors the next status writes of an object raise, one each, in order."""
        self._versions = itertools.count(1)
        self._watchers: dict[str, list[asyncio.Queue[tuple[str, dict[str, Any]]]]] = {}
        self._held: dict[str, asyncio.Event] = {}

    def hold(self, model: type[Resource]) -> asyncio.Event:
        """Keep the first list of `model` back until the returned event is set."""
        return self._held.setdefault(model.plural, asyncio.Event())

    # -- storage ---------------------------------------------------------------------------------------------------

    def _store(self, model: type[Resource]) -> Stored:
        return self.objects.setdefault(model.plural, {})

    def _write(self, model: type[R], body: dict[str, Any], kind: Literal["ADDED", "MODIFIED"]) -> R:
        body["metadata"]["resourceVersion"] = str(next(self._versions))
        meta = body["metadata"]
        self._store(model)[(meta.get("namespace") or "", meta["name"])] = body
        for queue in self._watchers.get(model.plural, []):
            queue.put_nowait((kind, body))
        return model.model_validate(body)

    def _body(self, model: type[Resource], name: str, namespace: str | None) -> dict[str, Any]:
        try:
            return self._store(model)[(namespace or "", name)]
        except KeyError:
            raise NotFound(f"{model.plural} {name} not found", status=404) from None

    # -- the API ---------------------------------------------------------------------------------------------------

    async def get(self, model: type[R], name: str, namespace: str | None = None) -> R:
        return model.model_validate(self._body(model, name, namespace))

    async def list(self, model: type[R], *, namespace: str | None = None, **_: Any) -> Listing[R]:
        items = [model.model_validate(b) for (ns, _n), b in self._store(model).items() if namespace in (None, ns)]
        return Listing(items, str(next(self._versions)))

    async def create(self, obj: R) -> R:
        body = obj.to_wire()
        meta = body["metadata"]
        if (meta.get("namespace") or "", meta["name"]) in self._store(type(obj)):
            raise AlreadyExists(f"{meta['name']} exists", status=409)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=wire_time(utcnow()), generation=1)
        return self._write(type(obj), body, "ADDED")

    async def patch(
        self,
        model: type[R],
        name: str,
        patch: dict[str, Any],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        subresource: str | None = None,
    ) -> R:
        current = self._body(model, name, namespace)
        if resource_version is not None and resource_version != current["metadata"]["resourceVersion"]:
            raise Conflict(f"{name} changed", status=409)
        return self._write(model, merged(current, patch), "MODIFIED")

    async def patch_status(
        self,
        model: type[R],
        name: str,
        status: dict[str, Any],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
    ) -> R:
        self.status_writes.append((name, status))
        if self.refuse.get(name):
            raise self.refuse[name].pop(0)
        return await self.patch(
            model,
            name,
            {"status": status},
            namespace=namespace,
            resource_version=resource_version,
            subresource="status",
        )

    async def delete(
        self,
        model: type[R],
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> None:
        meta = self._body(model, name, namespace)["metadata"]
        if uid not in (None, meta.get("uid")) or resource_version not in (None, meta["resourceVersion"]):
            raise Conflict(f"{name} changed", status=409)
        body = self._store(model).pop((namespace or "", name))
        for queue in self._watchers.get(model.plural, []):
            queue.put_nowait(("DELETED", body))

    async def watch(
        self, model: type[R], *, namespace: str | None = None, **_: Any
    ) -> AsyncIterator[WatchEvent[R] | Relisted[R]]:
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._watchers.setdefault(model.plural, []).append(queue)
        if (held := self._held.get(model.plural)) is not None:
            await held.wait()
        listing = await self.list(model, namespace=namespace)
        seen = {item.metadata.resource_version for item in listing.items}
        yield Relisted(listing.items, listing.resource_version)
        while True:
            kind, body = await queue.get()
            if namespace not in (None, body["metadata"].get("namespace")):
                continue
            if kind != "DELETED" and body["metadata"]["resourceVersion"] in seen:
                continue  # NB: written while held, and already in the list
            yield WatchEvent(kind, model.model_validate(body))  # type: ignore[arg-type]

    async def watch_raw(
        self, api_version: str, kind: str, **_: Any
    ) -> AsyncIterator[WatchEvent[dict[str, Any]] | Relisted[dict[str, Any]]]:
        """Built-in kinds (the controller's namespaces): none here, and none ever come."""
        yield Relisted([], "1")
        await asyncio.Event().wait()

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return manifest

    async def get_raw(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        raise NotFound(f"no {kind} here", status=404)

    async def delete_raw(self, api_version: str, kind: str, name: str, namespace: str | None = None, **_: Any) -> None:
        raise NotFound(f"no {kind} here", status=404)

    async def server_version(self) -> Release:
        return self.release

    async def get_lease(self, name: str, namespace: str) -> Lease:
        raise NotFound("no leases here", status=404)

    async def create_lease(self, lease: Lease) -> Lease:
        return lease

    async def replace_lease(self, lease: Lease) -> Lease:
        return lease

    async def emit_event(
        self,
        obj: Resource,
        *,
        reason: str,
        message: str,
        component: str,
        type: Literal["Normal", "Warning"] = "Normal",
    ) -> None:
        self.events.append((obj.name, reason, type))
