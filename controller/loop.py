"""The controller: watches feed the cache and one work queue; a pass decides (`foreman.controller.plan`, pure) and
this loop applies its plan: the writes go out together, and what a write teaches goes back into the queue.

The schedule loop (`foreman.controller.schedules`) runs beside it on the same cache and leadership: this module feeds
it the schedules whose tasks changed and carries out what its passes return (tasks to remember, Events to emit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Literal

import structlog

from foreman.api.http.client import Kube, Relisted
from foreman.api.http.errors import ApiError, Conflict, NotFound
from foreman.api.http.features import writes_node_label
from foreman.api.lifecycle import reasons
from foreman.api.models.agents import Agent
from foreman.api.models.base import Resource, key_of, utcnow
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue, labels_of
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import NODE_LABEL, AgenticTask
from foreman.api.runtime.daemon import release_free_memory, run_components, sleep_unless
from foreman.api.runtime.workqueue import WorkQueue
from foreman.controller import readings
from foreman.controller.cache import Cache, TaskKey
from foreman.controller.children import REFUSALS
from foreman.controller.config import ControllerConfig
from foreman.controller.deletion import delete_finished
from foreman.controller.leader import LeaderElector, LeaseConfig
from foreman.controller.metrics import ControllerMetrics
from foreman.controller.outcomes import outcome
from foreman.controller.placeable import PlaceableLanes
from foreman.controller.plan import (
    ChildWrite,
    Intent,
    LabelWrite,
    NodeNotReady,
    PlacementOrder,
    Plan,
    QueueStatusWrite,
    StatusWrite,
    TaskDelete,
    plan_pass,
)
from foreman.controller.schedules import Fired, ScheduleLoop

log = structlog.get_logger("foreman.controller")
COMPONENT = "foreman-controller"


class Controller:
    def __init__(self, kube: Kube, config: ControllerConfig | None = None, *, clock: Callable[[], datetime] = utcnow):
        self.kube = kube
        self.config = config or ControllerConfig()
        self.clock = clock
        self.cache = Cache(on_finished=self._finished)
        self.write_labels = True  # until run() asks the server (features.writes_node_label)
        self.metrics = ControllerMetrics()
        self.metrics.read_at_scrape(lambda: readings.read(self.cache, self._placeable, self.clock()))
        self.started_at = clock()
        """Tasks that finished before are not counted in the outcome metrics (a restart would count them again)."""
        self.queue: WorkQueue[TaskKey] = WorkQueue(lambda: self.clock().timestamp())
        self._placeable: PlaceableLanes[TaskKey, PlacementOrder] = PlaceableLanes()
        self._synced: dict[str, bool] = {}
        self._acting = asyncio.Event()
        """Leading and synced: the only state in which either loop decides anything."""
        self._live: frozenset[str] = frozenset()
        self._full: frozenset[str] = frozenset()
        """The queues at their cap after the last pass."""
        self._queues_written_at: dict[str, datetime] = {}
        self._nodes_changed = True
        self._background: set[asyncio.Task[None]] = set()
        self.schedules = ScheduleLoop(kube, self.cache, clock=clock, concurrency=self.config.write_concurrency)
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
        streams = [
            f"{kind}/{namespace or '*'}" for kind in ("tasks", "schedules", "agents") for namespace in namespaces
        ]
        self._synced = dict.fromkeys([*streams, "nodes", "queues", "namespaces"], False)
        components: list[Coroutine[Any, Any, None]] = [
            *(self._watch_tasks(namespace) for namespace in namespaces),
            *(self._watch_schedules(namespace) for namespace in namespaces),
            *(self._watch_agents(namespace) for namespace in namespaces),
            self._watch_nodes(),
            self._watch_queues(),
            self._watch_namespaces(),
            self._reconcile_forever(),
            self._schedule_forever(),
            self._resync(stop),
        ]
        self.metrics.leader.set(1 if self.leading else 0)
        try:
            await run_components(stop, components, elector=self.elector.run(stop) if self.elector else None)
        finally:
            await asyncio.gather(*self._background, return_exceptions=True)
            log.info("controller stopped", identity=self.config.identity)

    async def _watch_tasks(self, namespace: str | None) -> None:
        stream = f"tasks/{namespace or '*'}"
        async for event in self.kube.watch(AgenticTask, namespace=namespace, timeout_seconds=self.config.watch_timeout):
            if isinstance(event, Relisted):
                self._mark(self.cache.replace_tasks(event.items, namespace))
                self._stream_synced(stream)
            elif event.type == "DELETED":
                self.queue.remove(key_of(event.object))
                self._mark(self.cache.remove_task(key_of(event.object)))
            else:
                self._mark(self.cache.upsert_task(event.object))

    async def _watch_schedules(self, namespace: str | None) -> None:
        stream = f"schedules/{namespace or '*'}"
        watch = self.kube.watch(TaskSchedule, namespace=namespace, timeout_seconds=self.config.watch_timeout)
        async for event in watch:
            if isinstance(event, Relisted):
                self.schedules.replace(event.items, namespace)
                self._stream_synced(stream)
            elif event.type == "DELETED":
                self.schedules.remove(event.object)
            else:
                self.schedules.upsert(event.object)

    async def _watch_agents(self, namespace: str | None) -> None:
        stream = f"agents/{namespace or '*'}"
        async for event in self.kube.watch(Agent, namespace=namespace, timeout_seconds=self.config.watch_timeout):
            if isinstance(event, Relisted):
                agents = ((a.namespace or "", a.name, a.spec) for a in event.items)
                self._mark(self.cache.replace_agents(agents, namespace))
                self._stream_synced(stream)
            else:
                agent = event.object
                exists = event.type != "DELETED"
                self._mark(self.cache.set_agent(agent.namespace or "", agent.name, agent.spec, exists=exists))

    async def _watch_nodes(self) -> None:
        async for event in self.kube.watch(FleetNode, timeout_seconds=self.config.watch_timeout):
            now = self.clock()
            if isinstance(event, Relisted):
                self.cache.replace_nodes(event.items, now)
                self._nodes_changed = True
                self._stream_synced("nodes")
            elif event.type == "DELETED":
                self.cache.remove_node(event.object.name)
                self._nodes_changed = True
            elif self.cache.upsert_node(event.object, now):
                self._nodes_changed = True
            elif event.object.name in self._live:
                # NB: only the heartbeat moved on a node the last pass counted live: nothing a pass reads changed (a
                # fresher heartbeat cannot make a node less live), so no pass. A pass per heartbeat walked every
                # node and placed task: with 1,000 nodes at 30 s, 33 passes a second and most of the idle CPU.
                continue
            self.queue.poke()

    async def _watch_queues(self) -> None:
        async for event in self.kube.watch(TaskQueue, timeout_seconds=self.config.watch_timeout):
            if isinstance(event, Relisted):
                self._mark(self.cache.replace_queues(event.items))
                self._stream_synced("queues")
            else:
                self._mark(self.cache.set_queue(event.object, exists=event.type != "DELETED"))

    async def _watch_namespaces(self) -> None:
        """Namespace labels, for the TaskQueues' namespaceSelectors."""
        async for event in self.kube.watch_raw("v1", "Namespace", timeout_seconds=self.config.watch_timeout):
            if isinstance(event, Relisted):
                self._mark(self.cache.replace_namespace_labels(dict(map(labels_of, event.items))))
                self._stream_synced("namespaces")
            else:
                name, labels = labels_of(event.object)
                self._mark(self.cache.set_namespace_labels(name, None if event.type == "DELETED" else labels))

    async def _resync(self, stop: asyncio.Event) -> None:
        """Safety net: look at every task and schedule again at each resync period; and give the memory the last
        period's work freed back to the system."""
        while not await sleep_unless(stop, self.config.resync_every):
            self._mark_all()
            release_free_memory()

    async def _reconcile_forever(self) -> None:
        while True:
            await self._acting.wait()
            # NB: the longest wait is the node liveness check: a silent node is seen without any event
            await self.queue.wait(self.config.check_every)
            if self._acting.is_set():
                await self.reconcile_once()

    async def _schedule_forever(self) -> None:
        while True:
            await self._acting.wait()
            # NB: the longest wait bounds how late a fire is after a wall-clock jump (suspend, NTP)
            await self.schedules.queue.wait(self.config.schedule_check_every)
            if not self._acting.is_set():
                continue
            done = await self.schedules.run_once(self.clock())
            self._carry_out(done)

    def _carry_out(self, done: Fired) -> None:
        """What a schedule pass returns: the tasks it created or read go into the cache (and are placed), its notes
        become Events on the schedule."""
        for task in done.tasks:
            self._mark(self.cache.upsert_task(task))
        for schedule, note in done.notes:
            kind: Literal["Normal", "Warning"] = "Warning" if note.warning else "Normal"
            self._emit(schedule, note.reason, note.message, kind)
        for reason in done.decided:
            self.metrics.agent_schedules.labels(reason).inc()

    def _finished(self, old: AgenticTask | None, new: AgenticTask) -> None:
        """The cache saw a task finish: count it, once, if this replica leads (foreman.controller.outcomes)."""
        if self.leading and (finished := outcome(old, new, since=self.started_at, queue=self.cache.queue_of(new))):
            self.metrics.record(finished)

    def _stream_synced(self, stream: str) -> None:
        self._synced[stream] = True
        self._update_acting()

    def _leadership_changed(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        self._update_acting()

    def _update_acting(self) -> None:
        """Start or stop deciding. NB: on becoming able, everything is looked at: what was created while the caches
        listed or before leadership was won was only queued, and waited for a periodic wake-up (15 s; 30 s for a
        schedule)."""
        if not (self.leading and self.synced()):
            self._acting.clear()
        elif not self._acting.is_set():
            self._acting.set()
            self._mark_all()

    def _mark(self, keys: set[TaskKey]) -> None:
        self.queue.add_all(keys)
        if self.cache.touched_schedules:
            self.schedules.tasks_changed(self.cache.touched_schedules)
            self.cache.touched_schedules.clear()

    def _mark_all(self) -> None:
        self._mark(self.cache.all_tasks())
        self.schedules.mark_all()

    # -- one pass --------------------------------------------------------------------------------------------------

    async def reconcile_once(self) -> None:
        """Decide (pure), apply (I/O), requeue."""
        now = self.clock()
        dirty = self.queue.take()
        plan = plan_pass(
            self.cache,
            self._placeable,
            dirty,
            now,
            self.config,
            live_before=self._live,
            full_before=self._full,
            nodes_changed=self._nodes_changed,
            write_labels=self.write_labels,
            queues_written_at=self._queues_written_at,
        )
        self._live, self._full, self._nodes_changed = plan.live, plan.full, False
        self._observe()
        await self.apply(plan, now)

    async def apply(self, plan: Plan, now: datetime) -> None:
        """Carry out a plan: every write at once (bounded), each answer back into the cache and the queue; the
        queues' status last, as it counts the plan's placements and should not run ahead of the tasks it counts."""
        for key, until in plan.requeue.items():
            self.queue.add_at(key, until.timestamp())
        semaphore = asyncio.Semaphore(self.config.write_concurrency)

        async def bounded(intent: Intent) -> None:
            # NB: the write's coroutine is made only once it can run: one made up front and handed in is never
            # awaited when a stop cancels the gathered task before its first step (not even its `finally` runs),
            # and Python reports it (a CI run on a loaded machine saw that)
            async with semaphore:
                await self._carry(intent, now)

        tasks_and_nodes = [intent for intent in plan.writes if not isinstance(intent, QueueStatusWrite)]
        queues = [intent for intent in plan.writes if isinstance(intent, QueueStatusWrite)]
        for wave in (tasks_and_nodes, queues):
            await asyncio.gather(*(bounded(intent) for intent in wave))

    async def _carry(self, intent: Intent, now: datetime) -> None:
        if isinstance(intent, StatusWrite):
            await self._write(intent, now)
        elif isinstance(intent, LabelWrite):
            await self._relabel(intent.task)
        elif isinstance(intent, TaskDelete):
            await self._delete(intent.task)
        elif isinstance(intent, QueueStatusWrite):
            await self._write_queue_status(intent, now)
        elif isinstance(intent, ChildWrite):
            await self._amend_child(intent)
        else:
            await self._mark_node_not_ready(intent, now)

    def _observe(self) -> None:
        for phase, keys in self.cache.by_phase.items():
            self.metrics.tasks.labels(phase).set(len(keys))
        for node_phase, count in self.cache.nodes_by_phase().items():
            self.metrics.nodes.labels(node_phase).set(count)
        self.metrics.pending_queue.set(len(self._placeable))

    # -- writes ----------------------------------------------------------------------------------------------------

    async def _write(self, write: StatusWrite, now: datetime) -> None:
        """One optimistic status write. A conflict means the task moved: re-read it and decide again next pass.

        With `warn`, it is also a Warning Event on the task (a failure, a requeue): Events are for what the status
        cannot keep. The normal path (placed, blocked, unblocked) is in the conditions, with reason and time, and
        writes no Event: at full load one per placement was a sixth of the apiserver's writes (docs/design.md).
        """
        if not self.leading:
            return
        task, key = write.task, key_of(write.task)
        bound = log.bind(task=task.name, namespace=task.namespace, phase=write.patch.get("phase"), reason=write.reason)
        try:
            updated = await self.kube.patch_status(
                AgenticTask,
                task.name,
                write.patch,
                namespace=task.namespace,
                resource_version=task.metadata.resource_version,
            )
        except Conflict:
            bound.debug("task changed meanwhile, deciding again")
            await self._refresh(task)
            return
        except NotFound:
            self._mark(self.cache.remove_task(key))
            return
        except ApiError as error:
            self.metrics.reconcile_errors.inc()
            bound.warning("status write failed", error=str(error))
            self.queue.retry(key)
            return
        self.queue.forget(key)
        bound.info("task transition", node=updated.status.assigned_node, message=write.message)
        self.metrics.transitions.labels(write.reason).inc()
        if write.reason in REFUSALS:
            self.metrics.subtasks_refused.labels(write.reason).inc()
        self._mark(self.cache.upsert_task(updated))
        if write.warn:
            self._emit(updated, write.reason, write.message, "Warning")
        if write.cold_start:
            self.metrics.model_loads.inc()
            self._emit(updated, write.reason, write.message, "Normal")
        if write.warm_wait is not None:
            self.metrics.warm_wait.labels("cold" if write.cold_start else "warm").observe(write.warm_wait)
        if write.placed and task.metadata.creation_timestamp:
            self.metrics.time_to_place.observe((now - task.metadata.creation_timestamp).total_seconds())
        if write.relabel:
            await self._relabel(updated)

    async def _amend_child(self, intent: ChildWrite) -> None:
        """Change a child's spec: cancel one whose parent was cancelled or is gone (its worker, or the next pass, ends
        it), or give one an older version made its parent's requiredCapability (the next pass places it)."""
        if not self.leading:
            return
        task, amend = intent.task, intent.amend
        try:
            await self.kube.patch(AgenticTask, task.name, {"spec": amend.spec}, namespace=task.namespace)
        except NotFound:
            return
        except ApiError as error:
            self.metrics.reconcile_errors.inc()
            log.warning("child not changed", task=task.name, namespace=task.namespace, reason=amend.reason,
                        error=str(error))  # fmt: skip
            self.queue.retry(key_of(task))
            return
        log.info("child changed", task=task.name, namespace=task.namespace, reason=amend.reason, why=amend.message)
        self._emit(task, amend.reason, amend.message, "Normal")

    async def _relabel(self, task: AgenticTask) -> None:
        """Make the node label (the workers' watch hint) agree with the status (the truth); not needed (and not
        written) where workers select by field (features.writes_node_label)."""
        if not self.write_labels:
            return
        try:
            updated = await self.kube.patch(
                AgenticTask, task.name, {"metadata": {"labels": {NODE_LABEL: task.held_node}}}, namespace=task.namespace
            )
        except NotFound:
            return
        except ApiError as error:
            self.metrics.reconcile_errors.inc()
            log.warning("label write failed", task=task.name, namespace=task.namespace, error=str(error))
            self.queue.retry(key_of(task))
            return
        self.cache.upsert_task(updated)

    async def _delete(self, task: AgenticTask) -> None:
        """Delete a finished task past its time to live (controller/deletion.py); one changed meanwhile is decided
        again."""
        if not self.leading:
            return
        key = key_of(task)
        try:
            await delete_finished(self.kube, task)
        except Conflict:
            await self._refresh(task)
            return
        except NotFound:
            pass
        except ApiError as error:
            self.metrics.reconcile_errors.inc()
            log.warning("finished task not deleted", task=task.name, namespace=task.namespace, error=str(error))
            self.queue.retry(key)
            return
        log.info("finished task deleted: its time to live is over", task=task.name, namespace=task.namespace,
                 phase=task.phase, finished_at=task.status.finished_at)  # fmt: skip
        self.metrics.deleted.labels(task.phase).inc()
        self.queue.remove(key)
        self._mark(self.cache.remove_task(key))

    async def _mark_node_not_ready(self, intent: NodeNotReady, now: datetime) -> None:
        if not self.leading:
            return
        node = intent.node
        try:
            updated = await self.kube.patch_status(
                FleetNode, node.name, intent.patch, resource_version=node.metadata.resource_version
            )
        except ApiError as error:
            log.info("could not mark node NotReady", node=node.name, error=str(error))
            return
        log.warning("node marked NotReady", node=node.name, reason=reasons.HEARTBEAT_STALE)
        self.cache.upsert_node(updated, now)
        self._emit(updated, reasons.HEARTBEAT_STALE, intent.message, "Warning")

    async def _write_queue_status(self, intent: QueueStatusWrite, now: datetime) -> None:
        if not self.leading:
            return
        self._queues_written_at[intent.queue.name] = now
        try:
            updated = await self.kube.patch_status(TaskQueue, intent.queue.name, intent.patch)
        except ApiError as error:
            log.info("could not write queue status", queue=intent.queue.name, error=str(error))
            return
        self.cache.set_queue(updated, exists=True)

    async def _refresh(self, task: AgenticTask) -> None:
        try:
            fresh = await self.kube.get(AgenticTask, task.name, task.namespace)
        except NotFound:
            self._mark(self.cache.remove_task(key_of(task)))
        except ApiError:
            self.queue.retry(key_of(task))
        else:
            self._mark({key_of(task), *self.cache.upsert_task(fresh)})

    def _emit(self, obj: Resource, reason: str, message: str, kind: Literal["Normal", "Warning"]) -> None:
        """An Event, in the background: a pass never waits for one."""
        event = self.kube.emit_event(obj, reason=reason, message=message, component=COMPONENT, type=kind)
        task = asyncio.create_task(event)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
