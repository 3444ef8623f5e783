"""The dashboard's I/O shell: watches into memory, pages as server-sent events, actions with the user's credentials.

The server holds the current objects of its watches (what the pages show, nothing more) and, for each open page,
re-renders that page's view (`views`, pure) when something changes or the clock ticks; a view is sent only when it
differs from the last one sent. The page never talks to the apiserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import structlog
from aiohttp import web

from foreman.api.http.client import Kube, Relisted
from foreman.api.http.errors import ApiError, NotFound
from foreman.api.models import transcript
from foreman.api.models.agents import Agent
from foreman.api.models.base import Resource, utcnow
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue, labels_of
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.sdk import AlreadyFinished, AlreadyTriggered, ForemanClient
from foreman.cli.dashboard import guard, views
from foreman.controller.cache import Cache
from foreman.controller.waiting import fleet_of, line_up

log = structlog.get_logger("foreman.dashboard")

TICK = 2.0
"""Seconds between re-renders when nothing changed (ages, heartbeat colours); also how soon a closed page is noticed."""
RETRY_FORBIDDEN = 10.0
"""Seconds before a watch the user may not make (RBAC) is tried again."""
STATIC = resources.files("foreman.cli.dashboard") / "static"


@dataclass(frozen=True)
class Settings:
    namespace: str | None
    """None: every namespace (-A)."""
    allow_actions: bool = False
    stale_after: float = 90.0
    address: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class State:
    """The watched objects, a change signal, and transcripts followed while a page shows them."""

    def __init__(self, kube: Kube, settings: Settings):
        self.kube = kube
        self.settings = settings
        self.tasks: dict[views.Key, AgenticTask] = {}
        self.nodes: dict[str, FleetNode] = {}
        self.schedules: dict[views.Key, TaskSchedule] = {}
        self.queues: dict[str, TaskQueue] = {}
        self.agents: dict[views.Key, Agent] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.transcripts: dict[views.Key, str | None] = {}
        self.errors: dict[str, str] = {}
        self._followers: dict[views.Key, tuple[int, asyncio.Task[None]]] = {}
        self._changed = asyncio.Event()
        self.closing = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def next_change(self, within: float) -> None:
        """Return when something changed, the server is closing, or `within` seconds passed."""
        waits = [asyncio.ensure_future(self._changed.wait()), asyncio.ensure_future(self.closing.wait())]
        try:
            await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    # -- watches ---------------------------------------------------------------------------------------------------

    async def watch_all(self) -> None:
        scope = self.settings.namespace
        await asyncio.gather(
            self._keep_watching("tasks", lambda: self._mirror("tasks", AgenticTask, self.tasks, scope)),
            self._keep_watching("nodes", lambda: self._mirror("nodes", FleetNode, self.nodes, None)),
            self._keep_watching("schedules", lambda: self._mirror("schedules", TaskSchedule, self.schedules, scope)),
            self._keep_watching("queues", lambda: self._mirror("queues", TaskQueue, self.queues, None)),
            self._keep_watching("agents", lambda: self._mirror("agents", Agent, self.agents, scope)),
            self._keep_watching("namespaces", self._namespace_labels),
        )

    async def _namespace_labels(self) -> None:
        """The labels TaskQueues select namespaces by."""
        async for event in self.kube.watch_raw("v1", "Namespace"):
            if isinstance(event, Relisted):
                self.namespace_labels = dict(map(labels_of, event.items))
                self.errors.pop("namespaces", None)
            elif event.type == "DELETED":
                self.namespace_labels.pop(labels_of(event.object)[0], None)
            else:
                self.namespace_labels.update([labels_of(event.object)])
            self.changed()

    def fleet(self, now: datetime) -> Cache:
        """What the controller would see, for each task's queue and each Pending one's place in line."""
        return fleet_of(
            self.tasks.values(), self.nodes.values(), self.queues.values(), self.namespace_labels,
            self.agents.values(), now,
        )  # fmt: skip

    async def _keep_watching(self, what: str, watch: Callable[[], Awaitable[None]]) -> None:
        """Run a watch; one the user's RBAC refuses is reported on the page and tried again later."""
        while True:
            try:
                await watch()
            except ApiError as error:
                self.errors[what] = f"cannot watch {what}: {error}"
                self.changed()
                await asyncio.sleep(RETRY_FORBIDDEN)

    async def _mirror(self, what: str, model: type[Any], into: dict[Any, Any], namespace: str | None) -> None:
        """Keep `into` equal to what the watch of `model` sees; a (re)list clears the error shown for `what`."""

        def key(obj: Resource) -> Any:
            return (obj.namespace or "", obj.name) if obj.metadata.namespace is not None else obj.name

        async for event in self.kube.watch(model, namespace=namespace):
            if isinstance(event, Relisted):
                into.clear()
                into.update({key(obj): obj for obj in event.items})
                self.errors.pop(what, None)
            elif event.type == "DELETED":
                into.pop(key(event.object), None)
            else:
                into[key(event.object)] = event.object
            self.changed()

    @contextlib.asynccontextmanager
    async def following(self, key: views.Key) -> AsyncIterator[None]:
        """Watch the task's transcript ConfigMap while at least one page shows the task."""
        count, follower = self._followers.get(key) or (0, asyncio.create_task(self._follow_transcript(key)))
        self._followers[key] = (count + 1, follower)
        try:
            yield
        finally:
            count, follower = self._followers[key]
            if count == 1:
                del self._followers[key]
                self.transcripts.pop(key, None)
                self.errors.pop(f"transcript {key[0]}/{key[1]}", None)
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            else:
                self._followers[key] = (count - 1, follower)

    async def _follow_transcript(self, key: views.Key) -> None:
        namespace, name = key
        selector = f"metadata.name={transcript.configmap_name(name)}"
        failure = f"transcript {namespace}/{name}"
        while True:
            try:
                async for event in self.kube.watch_raw("v1", "ConfigMap", namespace=namespace, field_selector=selector):
                    if isinstance(event, Relisted):
                        found = event.items
                        self.errors.pop(failure, None)
                    else:
                        found = [] if event.type == "DELETED" else [event.object]
                    text = next(((obj.get("data") or {}).get(transcript.KEY) for obj in found), None)
                    self.transcripts[key] = str(text) if text is not None else None
                    self.changed()
            except ApiError as error:
                self.errors[failure] = f"cannot watch the transcript: {error}"
                self.changed()
                await asyncio.sleep(RETRY_FORBIDDEN)

    # -- views -----------------------------------------------------------------------------------------------------

    def render(self, page: str, query: dict[str, str], now: datetime) -> dict[str, Any]:
        actions = self.settings.allow_actions
        errors: tuple[str, ...]
        if page == "fleet":
            body = views.fleet_view(self.nodes.values(), self.tasks.values(), now, self.settings.stale_after)
            errors = ("nodes", "tasks")
        elif page == "tasks":
            body = views.tasks_view(self.tasks, views.TaskFilter.from_query(query), now, self.fleet(now))
            errors = ("tasks", "queues", "namespaces")
        elif page == "graph" and (query.get("name") or query.get("label")):
            body = views.graph_view(
                self.tasks,
                namespace=query.get("namespace", ""),
                name=query.get("name", ""),
                label=query.get("label", ""),
            )
            errors = ("tasks",)
        elif page == "graph":
            body, errors = {"graphs": views.graphs_index(self.tasks)}, ("tasks",)
        elif page == "task":
            key = (query.get("namespace", ""), query.get("name", ""))
            line = line_up(self.fleet(now), now).get(key)
            body = views.task_view(self.tasks.get(key), self.transcripts.get(key), actions=actions, line=line)
            errors = ("tasks", f"transcript {key[0]}/{key[1]}")
        elif page == "schedules":
            body = views.schedules_view(self.schedules.values(), now, actions=actions)
            errors = ("schedules",)
        else:
            raise web.HTTPNotFound(text=f"no page {page!r}")
        return {**body, "errors": [self.errors[e] for e in errors if e in self.errors]}


# -- HTTP ------------------------------------------------------------------------------------------------------------

STATE = web.AppKey("state", State)


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    if request.path == "/healthz":
        return await handler(request)  # NB: a kubelet probe names the pod's IP; "ok" tells nobody anything
    state = request.app[STATE]
    settings = state.settings
    refusal = guard.host_refusal(request.host, guard.allowed_hosts(settings.address, settings.allow_hosts))
    if refusal is None and request.method != "GET":
        if not settings.allow_actions:
            refusal = "this dashboard is read-only (start it with --allow-actions)"
        else:
            refusal = guard.action_refusal(
                host=request.host,
                origin=request.headers.get("Origin"),
                fetch_site=request.headers.get("Sec-Fetch-Site"),
                token=request.headers.get(guard.TOKEN_HEADER),
                expected=settings.token,
            )
    if refusal is not None:
        log.warning("request refused", method=request.method, path=request.path, why=refusal)
        return web.json_response({"error": refusal}, status=403)
    response = await handler(request)
    # NB: no framing (a cancel button under someone else's page) and nothing loaded from elsewhere
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def _index(request: web.Request) -> web.Response:
    """The page, with this server's token (only when it may act), whether it may act, and what it shows."""
    state = request.app[STATE]
    settings = state.settings
    page = (STATIC / "index.html").read_text()
    values = {
        "token": settings.token if settings.allow_actions else "",
        "actions": str(settings.allow_actions).lower(),
        "scope": settings.namespace or "all namespaces",
        "server": state.kube.server,
    }
    for name, value in values.items():
        page = page.replace("{{" + name + "}}", html.escape(value))
    return web.Response(text=page, content_type="text/html")


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _static(request: web.Request) -> web.Response:
    relative = request.match_info["path"]
    target = STATIC.joinpath(*relative.split("/"))
    if ".." in relative.split("/") or not target.is_file():
        raise web.HTTPNotFound()
    types = {"js": "text/javascript", "css": "text/css", "txt": "text/plain", "png": "image/png"}
    content_type = types.get(relative.rsplit(".", 1)[-1], "application/octet-stream")
    return web.Response(body=target.read_bytes(), content_type=content_type)


async def _events(request: web.Request) -> web.StreamResponse:
    """A page's view as server-sent events: the first at once, then each one that differs from the last."""
    state = request.app[STATE]
    page, query = request.match_info["page"], dict(request.query)
    state.render(page, query, utcnow())  # NB: an unknown page is a 404 before the stream opens
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    following: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
    if page == "task":
        following = state.following((query.get("namespace", ""), query.get("name", "")))
    last = ""
    with contextlib.suppress(ConnectionResetError):
        async with following:
            while not state.closing.is_set():
                body = json.dumps(state.render(page, query, utcnow()), separators=(",", ":"))
                # NB: a comment line on every tick finds a closed page (the write fails) within one tick
                await response.write(f"data: {body}\n\n".encode() if body != last else b": tick\n\n")
                last = body
                await state.next_change(TICK)
    return response


async def _act(request: web.Request, what: str, act: Callable[[ForemanClient, str], Awaitable[str]]) -> web.Response:
    """Run one action as the user; its refusals (already finished or fired, gone, forbidden) become the answer."""
    state = request.app[STATE]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        message = await act(ForemanClient(state.kube, namespace), name)
    except (AlreadyFinished, AlreadyTriggered) as refused:
        return web.json_response({"error": str(refused)}, status=409)
    except NotFound:
        return web.json_response({"error": f"no {what} {namespace}/{name}"}, status=404)
    except ApiError as error:
        return web.json_response({"error": str(error)}, status=error.status or 502)
    log.info("action from the dashboard", namespace=namespace, name=name, message=message)
    return web.json_response({"message": message})


async def _cancel(request: web.Request) -> web.Response:
    async def cancel(foreman: ForemanClient, name: str) -> str:
        await foreman.cancel(name)
        return f"agentictask/{name} cancelled"

    return await _act(request, "task", cancel)


async def _trigger(request: web.Request) -> web.Response:
    async def trigger(foreman: ForemanClient, name: str) -> str:
        return f"taskschedule/{name} triggered; its task will be {await foreman.trigger(name)}"

    return await _act(request, "schedule", trigger)


def make_app(kube: Kube, settings: Settings) -> web.Application:
    """The aiohttp application; its watches start with it and stop when it shuts down."""
    app = web.Application(middlewares=[_guard])
    state = State(kube, settings)
    app[STATE] = state
    app.router.add_get("/", _index)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/static/{path:.+}", _static)
    app.router.add_get("/events/{page}", _events)
    app.router.add_post("/api/tasks/{namespace}/{name}/cancel", _cancel)
    app.router.add_post("/api/schedules/{namespace}/{name}/trigger", _trigger)

    async def watching(app: web.Application) -> AsyncIterator[None]:
        watcher = asyncio.create_task(state.watch_all())
        yield
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    async def closing(app: web.Application) -> None:
        state.closing.set()

    app.cleanup_ctx.append(watching)
    app.on_shutdown.append(closing)
    return app


@contextlib.asynccontextmanager
async def serving(kube: Kube, settings: Settings, port: int) -> AsyncIterator[str]:
    """Serve the dashboard on settings.address:port (0: a free port) until the block ends; yields its URL."""
    # NB: open pages end their streams on shutdown (State.closing), so a short grace period is plenty
    runner = web.AppRunner(make_app(kube, settings), access_log=None, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, settings.address, port)
    await site.start()
    bound = runner.addresses[0][1]
    host = "127.0.0.1" if settings.address in ("0.0.0.0", "::", "") else settings.address
    host = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{host}:{bound}/"
    finally:
        await runner.cleanup()
