"""An in-memory apiserver under the real `Kube` (a `foreman.api.http.transport.Transport`): tests of a loop's own logic
(waking, requeueing, conflicts) run the real verbs, error mapping, decoding and parsing in milliseconds.

It answers the requests Foreman prepares as kube-apiserver does: one resourceVersion counter; uid, creationTimestamp and
generation set on create (generateName too) and a create's status dropped (our resources write it through their status
subresource only); JSON merge patches with their resourceVersion precondition (409), a patch that changes nothing
writing nothing; deletes with preconditions; server-side apply by one field manager; label and field selectors;
watches from a resourceVersion, where an object leaving the selection is DELETED, a stream ends with a bookmark at its
timeout, and a version older than the history kept is 410 Gone. Errors are Status bodies, read by the real error
mapping. tests/integration/test_fakekube.py tells one scenario to both servers and compares what they answer.

Not here: admission (namespaces need not exist), schemas (defaults, validation), RBAC, paging, garbage collection.
Anything about the real API's behaviour belongs in tests/integration against the real kube-apiserver.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from foreman.api.http.client import Kube, RetryPolicy
from foreman.api.http.errors import ApiError, Unreachable
from foreman.api.http.features import Release
from foreman.api.http.requests import APPLY_PATCH, Request
from foreman.api.http.transport import Answer, ServerTrust, Streamed
from foreman.api.models.base import GROUP, Resource, utcnow, wire_time
from foreman.api.models.kinds import RESOURCES

Body = dict[str, Any]
Stored = dict[tuple[str, str], Body]
OURS = {model.plural for model in RESOURCES}
KINDS = {model.plural: model.__name__ for model in RESOURCES}
WITH_STATUS = {model.plural for model in RESOURCES if "status" in model.model_fields}
"""Our kinds with a status subresource: a create or main-resource write leaves their status alone."""

ONE_TRY = RetryPolicy(attempts=1)
"""Tests of a loop watch its own retries, so `Kube` makes one attempt; its retry policy has tests of its own
(tests/unit/api/http/test_client.py)."""


def kube_over(api: FakeApiserver, *, retry: RetryPolicy = ONE_TRY) -> Kube:
    """The real client over the in-memory apiserver."""
    return Kube(api, retry=retry)


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


@dataclass(frozen=True)
class Route:
    """What a request's path names: a collection (no name), an object, or one of its subresources."""

    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


def route_of(path: str) -> Route:
    parts = path.strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]  # /api/v1/... or /apis/<group>/<version>/...
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    plural, name, subresource = [*rest, None, None][:3]
    assert plural is not None
    return Route(plural, namespace, name, subresource)


@dataclass(frozen=True)
class _Change:
    version: int
    type: str
    plural: str
    before: Body | None
    after: Body | None


class Refused(Exception):
    """An answer other than success, with its Status body."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.status: Body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": code}
        self.status.update(message=message, reason=reason)

    def answer(self) -> Answer:
        return _answer(self.status, code=self.status["code"])


class FakeApiserver:
    server = "https://fake-apiserver.invalid"

    def __init__(self) -> None:
        self.bearer_token: str | None = None
        self.release = Release(1, 37)
        """The release it answers as: the current one (workers select their tasks by field)."""
        self.objects: dict[str, Stored] = {}
        """plural -> (namespace or "", name) -> the stored body."""
        self.status_writes: list[tuple[str, Body]] = []
        """(object name, status patch) of each status write tried, refused ones included."""
        self.refuse: dict[str, list[ApiError]] = {}
        """Errors the next status writes of an object get, one each, in order: each as the apiserver would answer
        it (its status code, a Status body), Unreachable as a lost connection."""
        self.version = 0
        self._oldest = 0
        self._changes: list[_Change] = []
        self._changed = asyncio.Event()
        self._held: dict[str, asyncio.Event] = {}

    def hold(self, model: type[Resource]) -> asyncio.Event:
        """Keep the first list of `model` back until the returned event is set."""
        return self._held.setdefault(model.plural, asyncio.Event())

    def put(self, obj: Resource) -> Body:
        """Store `obj` as it is, status and all (what the cluster holds when a test starts), as a create would."""
        body = obj.to_wire()
        body["metadata"].pop("resourceVersion", None)
        meta = body["metadata"]
        self._write(obj.plural, (meta.get("namespace") or "", meta["name"]), body, "ADDED", None)
        return body

    def forget_history(self) -> None:
        """Compact, as etcd does: a watch from any version so far is 410 Gone."""
        self._changes.clear()
        self._oldest = self.version

    @property
    def events(self) -> list[tuple[str, str, str]]:
        """(object name, reason, type) of each Event recorded."""
        return [(e["involvedObject"]["name"], e["reason"], e["type"]) for e in self.objects.get("events", {}).values()]

    # -- the Transport -----------------------------------------------------------------------------------------------

    def server_trust(self) -> ServerTrust:
        return ServerTrust(self.server, verifies=False, certificate_authority=None)

    async def close(self) -> None:
        pass

    async def send(self, request: Request, *, within: float) -> Answer:
        try:
            return await self._answer(request)
        except Refused as refused:
            return refused.answer()

    @asynccontextmanager
    async def stream(self, request: Request, *, silence: float) -> AsyncIterator[Streamed]:
        if request.query.get("watch") != "true":
            answer = await self.send(request, within=silence)
            yield Streamed(answer.status, _one(answer.body))
            return
        yield Streamed(200, self._watch(route_of(request.path), request.query))

    # -- answers -----------------------------------------------------------------------------------------------------

    async def _answer(self, request: Request) -> Answer:
        if request.path == "/version":
            major, minor = self.release.major, self.release.minor
            return _answer({"major": str(major), "minor": str(minor), "gitVersion": f"v{major}.{minor}.0"})
        route = route_of(request.path)
        # NB: through JSON, as the real client sends it: a copy, and a body JSON cannot carry fails here too
        body: Any = json.loads(json.dumps(request.body)) if request.body is not None else None
        match request.method, route.name:
            case "GET", None:
                return _answer(await self._list(route, request.query))
            case "GET", _:
                return _answer(self._stored(route))
            case "POST", None:
                return _answer(self._create(route, body), code=201)
            case "PATCH", _ if request.content_type == APPLY_PATCH:
                return _answer(self._apply(route, body))
            case "PATCH", _:
                return _answer(self._patch(route, body))
            case "PUT", _:
                return _answer(self._replace(route, body))
            case "DELETE", _:
                return _answer(self._delete(route, body))
        raise NotImplementedError(f"the fake apiserver does not answer {request.method} {request.path}")

    async def _list(self, route: Route, query: dict[str, str]) -> Body:
        if (held := self._held.get(route.plural)) is not None:
            await held.wait()
        chosen = _selection(route.namespace, query)
        items = [body for body in self.objects.get(route.plural, {}).values() if chosen(body)]
        return {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.version)}, "items": items}

    def _stored(self, route: Route) -> Body:
        assert route.name is not None
        try:
            return self.objects.get(route.plural, {})[(route.namespace or "", route.name)]
        except KeyError:
            raise Refused(404, "NotFound", f'{_resource(route)} "{route.name}" not found') from None

    def _create(self, route: Route, body: Body) -> Body:
        meta = body.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise Refused(500, "", "resourceVersion should not be set on objects to be created")
        if route.namespace is not None:
            if meta.get("namespace", route.namespace) != route.namespace:
                raise Refused(400, "BadRequest", "the namespace of the object does not match the namespace sent")
            meta["namespace"] = route.namespace
        if "name" not in meta:
            if "generateName" not in meta:
                raise Refused(422, "Invalid", "metadata.name: Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        key = (route.namespace or "", meta["name"])
        if key in self.objects.get(route.plural, {}):
            raise Refused(409, "AlreadyExists", f'{_resource(route)} "{meta["name"]}" already exists')
        if route.plural in WITH_STATUS:
            body.pop("status", None)
        return self._write(route.plural, key, body, "ADDED", None)

    def _patch(self, route: Route, patch: Body) -> Body:
        current = self._stored(route)
        if route.subresource == "status":
            assert route.name is not None
            self.status_writes.append((route.name, patch.get("status") or {}))
            if self.refuse.get(route.name):
                raise _refusal(self.refuse[route.name].pop(0))
        self._precondition(route, current, patch.get("metadata", {}).get("resourceVersion"))
        patch = {**patch, "metadata": {k: v for k, v in patch.get("metadata", {}).items() if k != "resourceVersion"}}
        if route.subresource == "status":
            return self._update(route, current, merged(current, {"status": patch.get("status")}))
        if route.subresource is not None:
            raise NotImplementedError(f"the fake apiserver has no {route.subresource} subresource")
        return self._update(route, current, merged(current, patch))

    def _apply(self, route: Route, body: Body) -> Body:
        """Server-side apply by one field manager (ours): create, or what it sends now in place of what it sent before
        (a field it no longer sends is gone)."""
        if (route.namespace or "", route.name or "") not in self.objects.get(route.plural, {}):
            return self._create(Route(route.plural, route.namespace, None, None), body)
        return self._update(route, self._stored(route), body)

    def _replace(self, route: Route, body: Body) -> Body:
        current = self._stored(route)
        self._precondition(route, current, body.get("metadata", {}).get("resourceVersion"))
        return self._update(route, current, body)

    def _delete(self, route: Route, options: Body | None) -> Body:
        current = self._stored(route)
        preconditions = (options or {}).get("preconditions", {})
        for field, name, after in (
            ("uid", "UID", "deleted and then recreated"),
            ("resourceVersion", "ResourceVersion", "modified"),
        ):
            if preconditions.get(field) not in (None, current["metadata"].get(field)):
                raise Refused(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {KINDS.get(route.plural, route.plural)}.{GROUP} "{route.name}": '
                    f"the {name} in the precondition ({preconditions[field]}) does not match the {name} in record "
                    f"({current['metadata'][field]}). The object might have been {after}",
                )
        del self.objects[route.plural][(route.namespace or "", route.name or "")]
        self._changed_to(route.plural, "DELETED", current, None)
        return current

    # -- storage -----------------------------------------------------------------------------------------------------

    def _precondition(self, route: Route, current: Body, version: str | None) -> None:
        if version is not None and version != current["metadata"]["resourceVersion"]:
            raise Refused(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {_resource(route)} "{route.name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )

    def _update(self, route: Route, current: Body, proposed: Body) -> Body:
        """Write `proposed` over `current`, keeping what a client cannot change; a write that changes nothing is no
        write (the same resourceVersion, no watch event)."""
        kept = ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion")
        proposed["metadata"] = {
            **proposed.get("metadata", {}),
            **{k: current["metadata"][k] for k in kept if k in current["metadata"]},
        }
        if route.plural in WITH_STATUS and route.subresource != "status":
            proposed.pop("status", None)
            if "status" in current:
                proposed["status"] = current["status"]
        if route.plural in OURS and proposed.get("spec") != current.get("spec"):
            proposed["metadata"]["generation"] = current["metadata"].get("generation", 0) + 1
        if proposed == current:
            return current
        return self._write(route.plural, (route.namespace or "", route.name or ""), proposed, "MODIFIED", current)

    def _write(self, plural: str, key: tuple[str, str], body: Body, kind: str, before: Body | None) -> Body:
        meta = body["metadata"]
        if before is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", wire_time(utcnow()))
            if plural in OURS:
                meta.setdefault("generation", 1)
        self.objects.setdefault(plural, {})[key] = body
        self._changed_to(plural, kind, before, body)
        return body

    def _changed_to(self, plural: str, kind: str, before: Body | None, after: Body | None) -> None:
        self.version += 1
        if after is not None:
            after["metadata"]["resourceVersion"] = str(self.version)
        self._changes.append(_Change(self.version, kind, plural, before, after))
        self._changed.set()
        self._changed = asyncio.Event()

    # -- watching ----------------------------------------------------------------------------------------------------

    async def _watch(self, route: Route, query: dict[str, str]) -> AsyncIterator[bytes]:
        since = int(query["resourceVersion"])
        if since < self._oldest:
            yield _line("ERROR", Refused(410, "Expired", f"too old resource version: {since} ({self._oldest})").status)
            return
        chosen = _selection(route.namespace, query)
        deadline = asyncio.get_running_loop().time() + int(query["timeoutSeconds"])
        seen = since
        while True:
            if pending := [change for change in self._changes if change.version > seen]:
                for change in pending:
                    seen = change.version
                    if change.plural == route.plural and (event := _seen_as(change, chosen)) is not None:
                        yield _line(*event)
                continue  # NB: more may have been written while a line was read
            try:
                # NB: not wait_for, which in Python 3.11 swallows a cancel that comes as the wait ends
                async with asyncio.timeout_at(deadline):
                    await self._changed.wait()
            except TimeoutError:
                if query.get("allowWatchBookmarks") == "true":
                    yield _line("BOOKMARK", {"metadata": {"resourceVersion": str(self.version)}})
                return


def _seen_as(change: _Change, chosen: Any) -> tuple[str, Body] | None:
    """A change as a watch with a selection sees it (the watch cache's rule): entering it is ADDED, leaving it DELETED
    (the object as it was, at the change's version)."""
    was = change.before is not None and chosen(change.before)
    now = change.after is not None and chosen(change.after)
    if now and change.after is not None:
        return ("MODIFIED" if was else "ADDED"), change.after
    if was and change.before is not None:
        gone = copy.deepcopy(change.before)
        gone["metadata"]["resourceVersion"] = str(change.version)
        return "DELETED", gone
    return None


def _selection(namespace: str | None, query: dict[str, str]) -> Any:
    labels = _requirements(query.get("labelSelector"))
    fields = _requirements(query.get("fieldSelector"))

    def chosen(body: Body) -> bool:
        meta = body.get("metadata", {})
        if namespace is not None and meta.get("namespace") != namespace:
            return False
        own = meta.get("labels") or {}
        if not all(_holds(op, own.get(key), value) for key, op, value in labels):
            return False
        return all(_holds(op, _field(body, key), value) for key, op, value in fields)

    return chosen


def _requirements(selector: str | None) -> list[tuple[str, str, str | None]]:
    """`key=value`, `key==value`, `key!=value`, `key` and `!key`, comma-separated: the forms Foreman sends."""
    found: list[tuple[str, str, str | None]] = []
    for part in filter(None, (selector or "").split(",")):
        for op in ("!=", "==", "="):
            if op in part:
                key, value = part.split(op, 1)
                found.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            if " " in part.strip() or "(" in part:
                raise NotImplementedError(f"the fake apiserver does not read the selector {part!r}")
            found.append((part.strip().lstrip("!"), "absent" if part.strip().startswith("!") else "exists", None))
    return found


def _holds(op: str, actual: str | None, wanted: str | None) -> bool:
    match op:
        case "=":
            return actual == wanted
        case "!=":
            return actual != wanted
        case "exists":
            return actual is not None
    return actual is None


def _field(body: Body, path: str) -> str:
    """A field's value as a field selector compares it (absent: "")."""
    value: Any = body
    for step in path.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _refusal(error: ApiError) -> Refused:
    if isinstance(error, Unreachable):
        raise error
    return Refused(error.status or 500, error.reason, error.message)


def _resource(route: Route) -> str:
    return f"{route.plural}.{GROUP}" if route.plural in OURS else route.plural


def _answer(body: Any, *, code: int = 200) -> Answer:
    return Answer(code, json.dumps(body).encode())


def _line(kind: str, obj: Body) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


async def _one(body: bytes) -> AsyncIterator[bytes]:
    yield body
