"""The controller: watches feed the cache, one pass at a time decides, and the pass's writes go out together.

Each pass (1) marks silent nodes NotReady, (2) takes tasks back from lost or draining nodes, (3) decides every task
that changed (cancel, dependencies, backoff), (4) places the ready ones first-fit. Decisions are the pure functions
in rules / reclaim / match / transitions; this module only moves data between them and `Kube`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from foreman.api import reasons, status
from foreman.api.agents import Agent
from foreman.api.base import set_condition, utcnow
from foreman.api.daemon import sleep_unless
from foreman.api.errors import ApiError, Conflict, NotFound
from foreman.api.features import writes_node_label
from foreman.api.kube import Kube, Relisted
from foreman.api.resources import NODE_LABEL, AgenticTask, FleetNode
from foreman.api.schedules import TaskSchedule
from foreman.controller import transitions
from foreman.controller.cache import Cache, TaskKey, key_of
from foreman.controller.config import ControllerConfig
from foreman.controller.firing import Note
from foreman.controller.leader import LeaderElector, LeaseConfig
from foreman.controller.match import Need, Offer, Placer
from foreman.controller.metrics import ControllerMetrics
from foreman.controller.ready import ReadyQueue
from foreman.controller.reclaim import GiveUp, heard_recently, node_is_live, node_went_silent, reclaim
from foreman.controller.rules import Backoff, Blocked, Fail, Ready, decide
from foreman.controller.schedules import ScheduleLoop

log = structlog.get_logger("foreman.controller")
COMPONENT = "foreman-controller"
Write = Coroutine[Any, Any, object]
"""One API write of a reconcile pass, created during the pass and sent at its end."""


def need_of(task: AgenticTask) -> Need:
    capability = task.spec.required_capability
    return Need(
        accelerator=capability.accelerator,
        ram_gb=capability.min_ramgb,
        context_tokens=capability.min_context_tokens,
        selector=tuple(sorted(capability.node_selector.items())),
        executor=task.spec.executor,
    )


def offer_of(node: FleetNode) -> Offer:
    capability = node.status.capability
    return Offer(
        name=node.name,
        accelerator=capability.accelerator,
        ram_gb=capability.available_ramgb,
        context_tokens=capability.max_context_tokens,
        slots=node.spec.max_concurrent_tasks,
        labels=node.metadata.labels,
        executors=frozenset(capability.executors),
    )


PlacementOrder = tuple[int, datetime, str]


def placement_order(task: AgenticTask) -> PlacementOrder:
    created = task.metadata.creation_timestamp or datetime.max.replace(tzinfo=UTC)
    return (-task.spec.priority, created, task.name)


def no_fit_message(need: Need) -> str:
    wanted = [f"accelerator {need.accelerator}"]
    if need.ram_gb:
        wanted.append(f"{need.ram_gb:g} GB RAM")
    if need.context_tokens:
        wanted.append(f"{need.context_tokens} context tokens")
    wanted += [f"{key}={value}" for key, value in need.selector]
    wanted.append(f"executor {need.executor}")
    return "no Ready FleetNode offers " + ", ".join(wanted)


class Controller:
    def __init__(self, kube: Kube, config: ControllerConfig | None = None, *, clock: Callable[[], datetime] = utcnow):
        self.kube = kube
        self.config = config or ControllerConfig()
        self.clock = clock
        self.cache = Cache()
        self.write_labels = True  # until run() asks the server (features.writes_node_label)
        self.metrics = ControllerMetrics()
        self._dirty: set[TaskKey] = set()
        self._ready: ReadyQueue[TaskKey, PlacementOrder] = ReadyQueue()
        self._backoff: dict[TaskKey, datetime] = {}
        self._wake = asyncio.Event()
        self._synced: dict[str, bool] = {}
        self._live: frozenset[str] = frozenset()
        self._nodes_changed = True
        self._background: set[asyncio.Task[None]] = set()
        self.schedules = ScheduleLoop(
            kube,
            self.cache,
            clock=clock,
            leading=lambda: self.leading,
            remember=self._remember,
            record=self._record,
            check_every=self.config.schedule_check_every,
            concurrency=self.config.write_concurrency,
        )
        self.elector = (
            LeaderElector(
                kube,
                LeaseConfig(
                    name=self.config.lease_name,
                    namespace=self.config.lease_namespace,
                    identity=self.config.identity,
                    duration=self.config.lease_duration,
                    retry_period=self.config.lease_retry_period,
                ),
                on_change=self._leadership_changed,
            )
            if self.config.leader_election
            else None
        )

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def synced(self) -> bool:
        """Caches filled from a first list of every watched stream: decisions may be made."""
        return bool(self._synced) and all(self._synced.values())

    def is_ready(self) -> bool:
        """/readyz: synced, the API answering, and the Lease reachable (a standby that can read it is ready; one that
        cannot even do that would never take over)."""
        return self.synced() and self.is_healthy() and (self.elector is None or self.elector.trouble is None)

    def is_healthy(self) -> bool:
        """The API answers: /healthz turns 503 after `unhealthy_after_failures` failed calls in a row (an outage),
        as the worker's does."""
        return self.kube.consecutive_failures < self.config.unhealthy_after_failures

    # -- running ---------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; a component that fails unexpectedly stops the whole controller (and raises)."""
        self.write_labels = writes_node_label(await self.kube.server_version())
        namespaces: tuple[str | None, ...] = self.config.namespaces or (None,)
        components: list[Coroutine[Any, Any, None]] = [
            *(self._watch_tasks(namespace) for namespace in namespaces),
            *(self._watch_schedules(namespace) for namespace in namespaces),
            *(self._watch_agents(namespace) for namespace in namespaces),
            self._watch_nodes(),
            self._reconcile_forever(),
            self.schedules.run(self.synced),
            self._tick(stop),
        ]
        if self.elector is not None:
            components.append(self.elector.run(stop))
        self.metrics.leader.set(1 if self.leading else 0)
        running = [asyncio.create_task(component) for component in components]
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopped, *running], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stop.set()
            if self.elector is not None:
                # NB: let the elector release the lease before the watches go away
                elector_task = running[-1]
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(elector_task), 5)
            for task in [stopped, *running]:
                task.cancel()
            await asyncio.gather(stopped, *running, return_exceptions=True)
            await asyncio.gather(*self._background, return_exceptions=True)
            log.info("controller stopped", identity=self.config.identity)

    async def _watch_tasks(self, namespace: str | None) -> None:
        stream = f"tasks/{namespace or '*'}"
        self._synced[stream] = False
        async for event in self.kube.watch(AgenticTask, namespace=namespace, timeout_seconds=self.config.watch_timeout):
            if isinstance(event, Relisted):
                self._mark(self.cache.replace_tasks(event.items, namespace))
                self._synced[stream] = True
            elif event.type == "DELETED":
                self._mark(self.cache.remove_task(key_of(event.object)))
            else:
                self._mark(self.cache.upsert_task(event.object))

    async def _watch_schedules(self, namespace: str | None) -> None:
        stream = f"schedules/{namespace or '*'}"
        self._synced[stream] = False
        watch = self.kube.watch(TaskSchedule, namespace=namespace, timeout_seconds=self.config.watch_timeout)
        async for event in watch:
            if isinstance(event, Relisted):
                self.schedules.replace(event.items, namespace)
                self._synced[stream] = True
            elif event.type == "DELETED":
                self.schedules.remove(event.object)
            else:
                self.schedules.upsert(event.object)

    async def _watch_agents(self, namespace: str | None) -> None:
        stream = f"agents/{namespace or '*'}"
        self._synced[stream] = False
        async for event in self.kube.watch(Agent, namespace=namespace, timeout_seconds=self.config.watch_timeout):
            if isinstance(event, Relisted):
                self._mark(self.cache.replace_agents(((a.namespace or "", a.name) for a in event.items), namespace))
                self._synced[stream] = True
            else:
                agent = event.object
                self._mark(self.cache.set_agent(agent.namespace or "", agent.name, event.type != "DELETED"))

    async def _watch_nodes(self) -> None:
        self._synced["nodes"] = False
        async for event in self.kube.watch(FleetNode, timeout_seconds=self.config.watch_timeout):
            now = self.clock()
            if isinstance(event, Relisted):
                self.cache.replace_nodes(event.items, now)
                self._synced["nodes"] = True
                self._nodes_changed = True
            elif event.type == "DELETED":
                self.cache.remove_node(event.object.name)
                self._nodes_changed = True
            elif self.cache.upsert_node(event.object, now):
                self._nodes_changed = True
            self._wake.set()

    async def _tick(self, stop: asyncio.Event) -> None:
        """Wake the loop for node liveness checks, and mark everything dirty at each resync."""
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + self.config.resync_every
        while not await sleep_unless(stop, self.config.check_every):
            if loop.time() >= next_resync:
                next_resync = loop.time() + self.config.resync_every
                self._mark_all()
            self._wake.set()

    async def _reconcile_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.leading and self.synced():
                await self.reconcile_once()

    def _mark(self, keys: set[TaskKey]) -> None:
        if keys:
            self._dirty |= keys
        self._wake.set()
        if self.cache.touched_schedules:
            self.schedules.wake()

    def _remember(self, task: AgenticTask) -> None:
        self._mark(self.cache.upsert_task(task))

    def _record(self, schedule: TaskSchedule, note: Note) -> None:
        kind: Literal["Normal", "Warning"] = "Warning" if note.warning else "Normal"
        self._in_background(
            self.kube.emit_event(schedule, reason=note.reason, message=note.message, component=COMPONENT, type=kind)
        )

    def _mark_all(self) -> None:
        self._mark({(ns, name) for ns, names in self.cache.tasks.items() for name in names})
        self.schedules.mark_all()

    def _leadership_changed(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        if leading:
            self._mark_all()

    # -- one pass --------------------------------------------------------------------------------------------------

    async def reconcile_once(self) -> None:
        now = self.clock()
        writes: list[Write] = []
        for key, until in list(self._backoff.items()):
            if until <= now:
                self._dirty.add(key)
                del self._backoff[key]
        dirty, self._dirty = self._dirty, set()

        live = self._check_nodes(now, writes)
        if frozenset(live) != self._live:
            self._live, self._nodes_changed = frozenset(live), True
        self._check_placed_tasks(now, dirty, writes)
        self._decide(now, dirty, writes)
        self._place(now, live, writes, dirty)
        self._observe()

        semaphore = asyncio.Semaphore(self.config.write_concurrency)

        async def bounded(write: Write) -> None:
            try:
                async with semaphore:
                    await write
            finally:
                # NB: stopped while waiting for the semaphore, the write never started; closing it keeps Python from
                # reporting a coroutine that was never awaited (a no-op once it ran)
                write.close()

        await asyncio.gather(*(bounded(write) for write in writes))

    def _check_nodes(self, now: datetime, writes: list[Write]) -> dict[str, FleetNode]:
        live = {}
        for name, node in self.cache.nodes.items():
            heard_at = self.cache.heard_at.get(name)
            if node_is_live(node, heard_at, now, self.config.stale_after):
                live[name] = node
            elif node_went_silent(node, heard_at, now, self.config.stale_after):
                writes.append(self._mark_node_not_ready(node, now))
        return live

    def _check_placed_tasks(self, now: datetime, dirty: set[TaskKey], writes: list[Write]) -> None:
        for task in self.cache.active():
            name = task.status.assigned_node or ""
            heard = heard_recently(self.cache.heard_at.get(name), now, self.config.stale_after)
            action = reclaim(task, self.cache.nodes.get(name), heard, self.config.max_claim_expiries)
            if isinstance(action, GiveUp):
                writes.append(
                    self._write(
                        task, status.failed(task, now, action.reason, action.message), action.reason, action.message
                    )
                )
                dirty.discard(key_of(task))
            elif action is not None:
                patch = status.requeued(
                    task, now, action.reason, action.message, count_attempt=action.expired, claim_expired=action.expired
                )
                writes.append(self._write(task, patch, action.reason, action.message, relabel=True))
                dirty.discard(key_of(task))
            elif self.write_labels and self.cache.label_is_wrong(task):
                writes.append(self._relabel(task))

    def _decide(self, now: datetime, dirty: set[TaskKey], writes: list[Write]) -> None:
        for key in dirty:
            self._ready.discard(key)
            task = self.cache.task(key)
            if task is None:
                continue
            decision = decide(task, self.cache.siblings(key[0]), now, self.cache.agents.get(key[0], frozenset()))
            if isinstance(decision, Ready):
                self._ready.add(key, placement_order(task))
            elif isinstance(decision, Fail):
                patch = status.failed(task, now, decision.reason, decision.message, verdict=decision.verdict)
                writes.append(self._write(task, patch, decision.reason, decision.message))
            elif isinstance(decision, Blocked):
                if transitions.needs_pending_write(task, decision):
                    patch = transitions.pending(task, now, decision)
                    writes.append(self._write(task, patch, decision.reason, decision.message, warn=False))
            elif isinstance(decision, Backoff):
                self._backoff[key] = decision.until
                delay = (decision.until - now).total_seconds()
                asyncio.get_running_loop().call_later(max(0.0, delay), self._wake.set)

    def _place(self, now: datetime, live: dict[str, FleetNode], writes: list[Write], dirty: set[TaskKey]) -> None:
        """Place ready tasks by priority while any node has a free slot; then say which could never fit.

        NB: with thousands of tasks waiting for a handful of slots this runs on every event, so it stops at the
        first full fleet, and looks again at "could anything ever fit" only for new tasks or when nodes changed.
        """
        if not self._ready:
            return
        placer = Placer((offer_of(node) for node in live.values() if node.status.phase == "Ready"), self.cache.usage())
        if placer.has_capacity():
            with contextlib.closing(self._ready.in_order()) as ready:
                for key in ready:
                    task = self.cache.task(key)
                    if task is None:
                        continue
                    node = placer.place(need_of(task))
                    if node is not None:
                        self._ready.discard(key)
                        writes.append(self._schedule(task, node, now))
                    if not placer.has_capacity():
                        break
        # NB: iterating the queue already walks a snapshot of it
        recheck: Iterable[TaskKey] = self._ready if self._nodes_changed else [k for k in dirty if k in self._ready]
        self._nodes_changed = False
        for key in recheck:
            waiting = self.cache.task(key)
            if waiting is None:
                continue
            need = need_of(waiting)
            blocked = None if placer.fits_when_empty(need) else Blocked(reasons.NO_FITTING_NODE, no_fit_message(need))
            if transitions.needs_pending_write(waiting, blocked):
                patch = transitions.pending(waiting, now, blocked)
                message = blocked.message if blocked else ""
                writes.append(self._write(waiting, patch, reasons.NO_FITTING_NODE, message, warn=False))

    def _observe(self) -> None:
        for phase, keys in self.cache.by_phase.items():
            self.metrics.tasks.labels(phase).set(len(keys))
        for node_phase, count in self.cache.nodes_by_phase().items():
            self.metrics.nodes.labels(node_phase).set(count)
        self.metrics.pending_queue.set(len(self._ready))

    # -- writes ----------------------------------------------------------------------------------------------------

    async def _schedule(self, task: AgenticTask, node: str, now: datetime) -> None:
        message = f"assigned to FleetNode {node}"
        patch = transitions.scheduled(task, node, now)
        updated = await self._write(task, patch, reasons.FLEET_NODE_ASSIGNED, message, warn=False)
        if updated is not None:
            if task.metadata.creation_timestamp:
                self.metrics.time_to_schedule.observe((now - task.metadata.creation_timestamp).total_seconds())
            await self._relabel(updated)

    async def _write(
        self,
        task: AgenticTask,
        patch: dict[str, Any],
        reason: str,
        message: str,
        *,
        warn: bool = True,
        relabel: bool = False,
    ) -> AgenticTask | None:
        """One optimistic status write. A conflict means the task moved: re-read it and decide again next pass.

        With `warn`, it is also a Warning Event on the task (a failure, a requeue): Events are for what the status
        cannot keep. The normal path (placed, blocked, unblocked) is in the conditions, with reason and time, and
        writes no Event: at full load one per placement was a sixth of the apiserver's writes (bench/).
        """
        if not self.leading:
            return None
        bound = log.bind(task=task.name, namespace=task.namespace, phase=patch.get("phase"), reason=reason)
        try:
            updated = await self.kube.patch_status(
                AgenticTask,
                task.name,
                patch,
                namespace=task.namespace,
                resource_version=task.metadata.resource_version,
            )
        except Conflict:
            bound.debug("task changed meanwhile, deciding again")
            await self._refresh(task)
            return None
        except NotFound:
            self._mark(self.cache.remove_task(key_of(task)))
            return None
        except ApiError as error:
            self.metrics.reconcile_errors.inc()
            bound.warning("status write failed", error=str(error))
            self._retry_later(key_of(task))
            return None
        bound.info("task transition", node=updated.status.assigned_node, message=message)
        self.metrics.transitions.labels(reason).inc()
        self._mark(self.cache.upsert_task(updated))
        if warn:
            self._in_background(
                self.kube.emit_event(updated, reason=reason, message=message, component=COMPONENT, type="Warning")
            )
        if relabel:
            await self._relabel(updated)
        return updated

    async def _relabel(self, task: AgenticTask) -> None:
        """Make the node label (the workers' watch hint) agree with the status (the truth); not needed (and not
        written) where workers select by field (features.writes_node_label)."""
        if not self.write_labels:
            return
        wanted = task.status.assigned_node if task.phase in ("Scheduled", "Running") else None
        try:
            updated = await self.kube.patch(
                AgenticTask, task.name, {"metadata": {"labels": {NODE_LABEL: wanted}}}, namespace=task.namespace
            )
        except NotFound:
            return
        except ApiError as error:
            self.metrics.reconcile_errors.inc()
            log.warning("label write failed", task=task.name, namespace=task.namespace, error=str(error))
            self._retry_later(key_of(task))
            return
        self.cache.upsert_task(updated)

    async def _mark_node_not_ready(self, node: FleetNode, now: datetime) -> None:
        if not self.leading:
            return
        message = f"no heartbeat for more than {self.config.stale_after.total_seconds():g} s"
        conditions = set_condition(
            node.status.conditions, type="Ready", status="False", reason="HeartbeatStale", message=message, now=now
        )
        try:
            updated = await self.kube.patch_status(
                FleetNode,
                node.name,
                {"phase": "NotReady", "conditions": [c.to_wire() for c in conditions]},
                resource_version=node.metadata.resource_version,
            )
        except ApiError as error:
            log.info("could not mark node NotReady", node=node.name, error=str(error))
            return
        log.warning("node marked NotReady", node=node.name, reason="HeartbeatStale")
        self.cache.upsert_node(updated, now)
        self._in_background(
            self.kube.emit_event(updated, reason="HeartbeatStale", message=message, component=COMPONENT, type="Warning")
        )

    async def _refresh(self, task: AgenticTask) -> None:
        try:
            fresh = await self.kube.get(AgenticTask, task.name, task.namespace)
        except NotFound:
            self._mark(self.cache.remove_task(key_of(task)))
        except ApiError:
            self._retry_later(key_of(task))
        else:
            self._mark({key_of(task), *self.cache.upsert_task(fresh)})

    def _retry_later(self, key: TaskKey, delay: float = 1.0) -> None:
        asyncio.get_running_loop().call_later(delay, self._mark, {key})

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
