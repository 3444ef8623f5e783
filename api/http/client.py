"""The one module that talks to the Kubernetes API: typed models in, typed models out.

Requests are prepared by the pure functions in `foreman.api.http.requests` and sent through a
`foreman.api.http.transport.Transport`; this module maps answers to `foreman.api.http.errors` classes, applies the retry
policy (tenacity: 5xx, 429, lost connections and NotServed, a resource its CRD does not serve yet; never a 409), decodes
bodies and parses them into typed models. Kubernetes-asyncio provides configuration loading (kubeconfig, in-cluster,
token refresh) and, under the real transport, the HTTP session.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Literal, Self, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from foreman.api.http import decoding, k8sclient, requests
from foreman.api.http.errors import (
    RETRYABLE,
    AlreadyExists,
    ApiError,
    Gone,
    TooManyRequests,
    Unreachable,
    error_from_response,
)
from foreman.api.http.features import Release, release_of
from foreman.api.http.requests import Request
from foreman.api.http.transport import ApiClientTransport, ServerTrust, Transport
from foreman.api.models.base import STORED, Resource, utcnow
from foreman.api.models.lease import Lease
from foreman.api.runtime.backoff import backoff_delay

log = structlog.get_logger("foreman.kube")

R = TypeVar("R", bound=Resource)
T = TypeVar("T")
A = TypeVar("A")


class ConfigError(Exception):
    """No usable cluster configuration (no kubeconfig, no in-cluster service account)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial_wait: float = 0.05
    max_wait: float = 5.0
    request_timeout: float = 30.0


@dataclass(frozen=True)
class Listing(Generic[R]):
    items: list[R]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent(Generic[T]):
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    object: T


@dataclass(frozen=True)
class Relisted(Generic[T]):
    """The full state after a (re)list: replace the cache with it, which also accounts for deletions missed."""

    items: list[T]
    resource_version: str


def kubeconfig_path(explicit: str | None) -> str:
    path = explicit or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if not os.path.exists(path):
        raise ConfigError(f"kubeconfig {path} does not exist (run `foreman dev up` or pass --kubeconfig)")
    return path


IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _pod_namespace() -> str | None:
    """The namespace of the pod we run in (a few bytes, read once at start like the in-cluster token)."""
    return IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.exists() else None


async def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> tuple[Any, str]:
    """In-cluster when running in a pod and no kubeconfig is given, else the kubeconfig (or $KUBECONFIG); with the
    namespace kubectl would use when none is given: the context's, or the pod's own, else `default`."""
    configuration = k8sclient.Configuration()
    namespace = None
    try:
        if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            k8sclient.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            namespace = _pod_namespace()
        else:
            path = kubeconfig_path(kubeconfig)
            await k8sclient.load_kube_config(config_file=path, context=context, client_configuration=configuration)
            contexts, current = k8sclient.list_kube_config_contexts(path)
            chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
            namespace = ((chosen or {}).get("context") or {}).get("namespace")
    except k8sclient.ConfigException as error:
        raise ConfigError(f"cannot load cluster configuration: {error}") from None
    return configuration, namespace or "default"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class Kube:
    """Async, typed access to the Kubernetes API for Foreman resources, Leases, Events and manifests."""

    def __init__(self, transport: Transport, *, retry: RetryPolicy | None = None, namespace: str = "default"):
        self.transport = transport
        self.namespace = namespace
        """The namespace to use when none is given (the kubeconfig context's, as kubectl)."""
        self.retry = retry or RetryPolicy()
        self.consecutive_failures = 0
        """API calls in a row that got no usable answer (connection lost, 5xx); 0 after any success."""

    @classmethod
    async def connect(
        cls, kubeconfig: str | None = None, *, context: str | None = None, retry: RetryPolicy | None = None
    ) -> Self:
        configuration, namespace = await load_configuration(kubeconfig, context)
        return cls(ApiClientTransport(configuration), retry=retry, namespace=namespace)

    @property
    def server(self) -> str:
        """The apiserver's URL (what the dashboard says it reads)."""
        return self.transport.server

    @property
    def bearer_token(self) -> str | None:
        """The token this client presents (none: it authenticates otherwise, e.g. with a client certificate)."""
        return self.transport.bearer_token

    def server_trust(self) -> ServerTrust:
        """How this client trusts the apiserver: for a kubeconfig that lets another host reach it the same way."""
        return self.transport.server_trust()

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- sending ---------------------------------------------------------------------------------------------------

    async def _answered(self, answer: Awaitable[A]) -> A:
        """The transport's answer; none at all (connection lost, timeout) is one more failure in a row."""
        try:
            return await answer
        except Unreachable:
            self.consecutive_failures += 1
            raise

    def _check(self, status: int, body: bytes) -> None:
        """An HTTP error becomes its ApiError subclass; a usable answer ends a run of failures."""
        if status < 400:
            self.consecutive_failures = 0
            return
        try:
            parsed: Any = decoding.loads(body)
        except ValueError:
            parsed = body.decode(errors="replace")
        failure = error_from_response(status, parsed)
        self.consecutive_failures = self.consecutive_failures + 1 if isinstance(failure, RETRYABLE) else 0
        raise failure

    async def _send_once(self, request: Request) -> Any:
        answer = await self._answered(self.transport.send(request, within=self.retry.request_timeout))
        self._check(answer.status, answer.body)
        return decoding.loads(answer.body) if answer.body else None

    async def _send(self, request: Request) -> Any:
        # NB: a create with generateName is not idempotent: repeating it after a lost answer could create two
        # objects, so only a 429 (which the server never acted on) is retried for it.
        retryable = RETRYABLE if request.idempotent else (TooManyRequests,)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(retryable),
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.retry.initial_wait, max=self.retry.max_wait, jitter=self.retry.initial_wait
            ),
            before_sleep=lambda state: log.warning(
                "api call failed, retrying",
                path=request.path,
                attempt=state.attempt_number,
                error=str(state.outcome.exception()) if state.outcome else None,
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(request)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    # -- Foreman resources -----------------------------------------------------------------------------------------

    async def get(self, model: type[R], name: str, namespace: str | None = None) -> R:
        return model.model_validate(await self._send(requests.get(model, name, namespace)), context=STORED)

    async def list(
        self,
        model: type[R],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        cached: bool = False,
    ) -> Listing[R]:
        """A consistent list (from etcd); with `cached`, from the apiserver's watch cache: possibly a moment stale,
        but it costs the server no read of the whole collection (what a periodic safety-net list should use)."""
        items: builtins.list[R] = []
        token: str | None = None
        while True:
            request = requests.list_(
                model,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                cached=cached,
                continue_=token,
            )
            body = await self._send(request)
            items += [item for raw in body.get("items") or [] if (item := _parse(model, raw)) is not None]
            token = body["metadata"].get("continue")
            if not token:
                # NB: every page of one list is of the same snapshot, so its resourceVersion is the list's
                return Listing(items, body["metadata"]["resourceVersion"])

    async def create(self, obj: R) -> R:
        return type(obj).model_validate(await self._send(requests.create(obj)), context=STORED)

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
        """Merge-patch the main resource (metadata, spec; the status subresource ignores those) or a subresource."""
        request = requests.merge_patch(
            model, name, patch, namespace=namespace, resource_version=resource_version, subresource=subresource
        )
        return model.model_validate(await self._send(request), context=STORED)

    async def patch_status(
        self,
        model: type[R],
        name: str,
        status: dict[str, Any],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
    ) -> R:
        """Merge-patch `status`; with resource_version, a Conflict is raised if the object changed meanwhile."""
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
        """Delete; with `uid` / `resource_version`, only the object as it was read (a Conflict otherwise)."""
        await self._send(requests.delete(model, name, namespace, uid=uid, resource_version=resource_version))

    # -- watching --------------------------------------------------------------------------------------------------

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
    ) -> AsyncIterator[WatchEvent[R] | Relisted[R]]:
        """List, then watch forever from the listed resourceVersion.

        When the server ends the stream (its timeout, a restart), the watch resumes from the last resourceVersion
        seen, so nothing is missed or repeated; on 410 Gone it relists and yields `Relisted`. A stream silent for
        longer than timeout_seconds plus a grace period is treated as stalled and reopened. `listed`: a consistent
        list the caller has just read with the same selectors, which the watch starts from instead of reading its
        own (each one costs the server a read of every object of the kind from etcd).

        NB: the loop itself is returned, not iterated here: a generator around it would hold the last event it
        passed on (the first listing, in a quiet stream) for as long as the stream stays quiet.
        """
        selectors = {"namespace": namespace, "label_selector": label_selector, "field_selector": field_selector}
        first = [listed] if listed is not None else []

        async def relist() -> Relisted[R]:
            if first:
                listing = first.pop()
            else:
                listing = await self.list(
                    model, namespace=namespace, label_selector=label_selector, field_selector=field_selector
                )
            return Relisted(listing.items, listing.resource_version)

        def watch_from(version: str) -> Request:
            return requests.watch(model, resource_version=version, timeout_seconds=timeout_seconds, **selectors)

        decode = functools.partial(decode_watch_line, model)
        return self._watch(model.plural, relist, watch_from, decode, timeout_seconds, max_backoff)

    def watch_raw(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 60,
        max_backoff: float = 5.0,
    ) -> AsyncIterator[WatchEvent[dict[str, Any]] | Relisted[dict[str, Any]]]:
        """`watch` for a built-in kind (ConfigMaps holding transcripts), objects as plain dicts."""

        async def relist() -> Relisted[dict[str, Any]]:
            body = await self._send(requests.list_objects(api_version, kind, namespace, field_selector))
            return Relisted(builtins.list(body.get("items") or []), body["metadata"]["resourceVersion"])

        def watch_from(version: str) -> Request:
            return requests.watch_objects(
                api_version,
                kind,
                resource_version=version,
                timeout_seconds=timeout_seconds,
                namespace=namespace,
                field_selector=field_selector,
            )

        return self._watch(kind, relist, watch_from, decode_raw_watch_line, timeout_seconds, max_backoff)

    async def _watch(
        self,
        what: str,
        relist: Callable[[], Awaitable[Relisted[T]]],
        watch_from: Callable[[str], Request],
        decode: Callable[[bytes], tuple[str | None, WatchEvent[T] | None]],
        timeout_seconds: int,
        max_backoff: float,
    ) -> AsyncIterator[WatchEvent[T] | Relisted[T]]:
        """The list-then-watch loop of `watch` and `watch_raw`: resume after the stream ends, relist on Gone."""
        resource_version: str | None = None
        failures = 0
        while True:
            try:
                if resource_version is None:
                    listed = await relist()
                    resource_version = listed.resource_version
                    yield listed
                    # NB: the listing is the caller's now; held here, every object it had would stay in memory
                    # beside the caller's newer copies until the next relist (1,000 nodes: 5 MiB of the controller)
                    del listed
                async for line in self._stream(watch_from(resource_version), timeout_seconds):
                    failures = 0
                    seen, event = decode(line)
                    resource_version = seen or resource_version
                    if event is not None:
                        yield event
            except Gone:
                log.info("watch resourceVersion expired, relisting", resource=what)
                resource_version = None
            except RETRYABLE as error:
                failures += 1
                delay = backoff_delay(failures, 0.1, max_backoff)
                log.warning("watch interrupted", resource=what, error=str(error), retry_in=delay)
                await asyncio.sleep(delay)

    async def _stream(self, request: Request, timeout_seconds: int) -> AsyncIterator[bytes]:
        # NB: the server ends a watch after timeout_seconds, so a longer silence means a stalled connection, which we
        # drop and reopen
        async with contextlib.AsyncExitStack() as opened:
            answer = self.transport.stream(request, silence=timeout_seconds + 15)
            streamed = await self._answered(opened.enter_async_context(answer))
            if streamed.status >= 400:
                self._check(streamed.status, b"".join([line async for line in streamed.lines]))
            self.consecutive_failures = 0
            async for line in streamed.lines:
                if line.strip():
                    yield line

    # -- built-in objects: manifests, events, leases ---------------------------------------------------------------

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of one manifest (CRDs, RBAC, ...), field manager `foreman`."""
        result: dict[str, Any] = await self._send(requests.apply(manifest))
        return result

    async def server_version(self) -> Release:
        """The apiserver's Kubernetes release (GET /version), to switch features on by what it offers."""
        return release_of(await self._send(Request("GET", "/version")))

    async def get_raw(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._send(requests.get_object(api_version, kind, name, namespace))
        return result

    async def delete_raw(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> None:
        await self._send(requests.delete_object(api_version, kind, name, namespace, uid=uid))

    async def list_raw(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        body = await self._send(requests.list_objects(api_version, kind, namespace, field_selector, label_selector))
        return builtins.list(body.get("items") or [])

    async def request_token(
        self, namespace: str, service_account: str, seconds: int, *, pod: requests.BoundPod | None = None
    ) -> IssuedToken:
        """A fresh token of the ServiceAccount (TokenRequest), bound to `pod` when given, else to no object."""
        answer = await self._send(requests.token_request(namespace, service_account, seconds, pod=pod))
        status = answer["status"]
        return IssuedToken(status["token"], datetime.fromisoformat(status["expirationTimestamp"]))

    async def get_lease(self, name: str, namespace: str) -> Lease:
        return Lease.model_validate(await self.get_raw("coordination.k8s.io/v1", "Lease", name, namespace))

    async def create_lease(self, lease: Lease) -> Lease:
        return Lease.model_validate(await self._send(requests.create_object(lease.to_wire())))

    async def replace_lease(self, lease: Lease) -> Lease:
        """Optimistic: the lease's metadata.resourceVersion must be current, else Conflict."""
        return Lease.model_validate(await self._send(requests.replace_object(lease.to_wire())))

    async def emit_event(
        self,
        obj: Resource,
        *,
        reason: str,
        message: str,
        component: str,
        type: Literal["Normal", "Warning"] = "Normal",
    ) -> None:
        """Record a Kubernetes Event on obj (best effort: an event that cannot be written is logged, not raised)."""
        request = requests.event(
            obj,
            reason=reason,
            message=message,
            component=component,
            type=type,
            now=utcnow(),
            suffix=secrets.token_hex(8),
        )
        try:
            await self._send(request)
        except AlreadyExists:
            pass  # a retried create whose first attempt landed: the event is recorded
        except ApiError as error:
            log.warning("event not recorded", object=obj.name, reason=reason, error=str(error))


class _EventLine(BaseModel, Generic[R]):
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    object: R


def decode_watch_line(model: type[R], line: bytes) -> tuple[str | None, WatchEvent[R] | None]:
    """One watch line: the resourceVersion it carries and the event to yield (None for a bookmark or an object our
    model rejects); an ERROR line raises its ApiError.

    NB: the usual line is parsed straight from bytes into the model by pydantic-core, less than half the CPU of
    json.loads and then validating the dict (a watching process parses every event of its selection); anything
    else fails that parse and is decoded generically, to say what it is.
    """
    try:
        parser: type[_EventLine[R]] = _EventLine[model]  # type: ignore[valid-type]
        fast = parser.model_validate_json(line, context=STORED)
    except ValidationError:
        pass
    else:
        return fast.object.metadata.resource_version, WatchEvent(fast.type, fast.object)
    event = decoding.loads(line)
    kind, obj = event.get("type"), event.get("object", {})
    if kind == "ERROR":
        raise error_from_response(int(obj.get("code", 500)), obj)
    parsed = _parse(model, obj) if kind in ("ADDED", "MODIFIED", "DELETED") else None
    return obj.get("metadata", {}).get("resourceVersion"), WatchEvent(kind, parsed) if parsed is not None else None


def decode_raw_watch_line(line: bytes) -> tuple[str | None, WatchEvent[dict[str, Any]] | None]:
    """One watch line of a built-in kind: its resourceVersion and the event (None for a bookmark); ERROR raises."""
    event = decoding.loads(line)
    kind, obj = event.get("type"), event.get("object") or {}
    if kind == "ERROR":
        raise error_from_response(int(obj.get("code", 500)), obj)
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return version, WatchEvent(kind, obj) if kind in ("ADDED", "MODIFIED", "DELETED") else None


def _parse(model: type[R], body: dict[str, Any]) -> R | None:
    """Parse one object from a list or watch; an object our model rejects is logged and skipped, not fatal."""
    try:
        return model.model_validate(body, context=STORED)
    except ValidationError as error:
        name = body.get("metadata", {}).get("name")
        log.error("object does not match the model, skipped", resource=model.plural, name=name, error=str(error))
        return None
