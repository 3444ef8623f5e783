"""The worker: finds tasks Scheduled on its node, claims them optimistically, runs executors, writes results.

Its watch (of the tasks Scheduled or Running on its node: `features.tasks_on_node`; all namespaces unless configured)
both finds work and delivers cancels and deletions of running tasks; a slow poll is only a safety net. This module
is the node's loop (watch, poll, recover, drain); one task's run is `execution`, what the node offers is `offering`,
and every decision is in `rules`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

import structlog

from foreman.api.http.client import Kube, Listing, Relisted
from foreman.api.http.errors import ApiError, Conflict, NotFound
from foreman.api.http.features import Release, tasks_on_node
from foreman.api.lifecycle import reasons
from foreman.api.models.base import utcnow
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.api.runtime.daemon import sleep_unless
from foreman.worker import rules
from foreman.worker.config import WorkerConfig
from foreman.worker.detect import detect
from foreman.worker.execution import Execution, TaskRunner
from foreman.worker.executors.base import Executor, load_executors
from foreman.worker.metrics import WorkerMetrics
from foreman.worker.offering import NodeOffer
from foreman.worker.registrar import Registrar
from foreman.worker.retries import Retries

log = structlog.get_logger("foreman.worker")


class Worker:
    def __init__(
        self,
        kube: Kube,
        config: WorkerConfig,
        *,
        executors: Mapping[str, type[Executor]] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.kube = kube
        self.config = config
        self.node = config.node_name
        self.clock = clock
        self.selection = tasks_on_node(self.node, Release(1, 20))  # until run() asks the server
        self.metrics = WorkerMetrics()
        self.offer = NodeOffer({name: cls() for name, cls in (executors or load_executors()).items()}, config)
        self.retries = Retries(lambda: self.clock().timestamp())
        self.runner = TaskRunner(
            kube,
            config,
            claimant=f"{self.node}/{uuid.uuid4().hex[:12]}",
            offer=self.offer,
            metrics=self.metrics,
            retries=self.retries,
            clock=clock,
        )
        self.registrar: Registrar | None = None
        self.draining = False
        self._executions: dict[str, Execution] = {}  # by task uid
        self._known: dict[str, AgenticTask] = {}  # this node's tasks as last seen, by uid
        self._listed: set[str | None] = set()  # the namespaces whose watch has its first snapshot
        self.log = log.bind(node=self.node)

    def is_healthy(self) -> bool:
        return self.registrar is not None and not self.registrar.degraded

    def synced(self) -> bool:
        """Registered, recovered, and every watch has listed: from now on it sees each task placed on its node as it
        is placed (what start-up costs the apiserver is behind it)."""
        return len(self._listed) == len(self.config.namespaces or [None])

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Register, recover, work until `stop`, then drain: finish or hand back running tasks, and return."""
        await self.offer.start()
        capability = await detect(self.config)
        self.offer.memory_gb = capability.model_memory_gb
        self.registrar = Registrar(
            self.kube,
            self.config,
            capability,
            self.metrics,
            running=lambda: len(self._executions),
            offering=self.offer.current,
            clock=self.clock,
        )
        await self.registrar.register()
        self.selection = tasks_on_node(self.node, await self.kube.server_version())
        # NB: heartbeats start as soon as the node is registered: recovering its old tasks lists from a possibly busy
        # apiserver, and a node silent for that long could be judged lost before it ever looked for work. They go on
        # through the drain: the controller judges a silent Draining node lost (its worker was killed mid-drain).
        drained = asyncio.Event()
        components = [
            asyncio.create_task(self.registrar.run(drained)),
            asyncio.create_task(self.offer.probe(stop)),
            asyncio.create_task(self.retries.run()),
        ]
        # NB: asked to leave (`foreman node leave`) drains as SIGTERM does; the worker then exits 0, done
        stopped = asyncio.create_task(_first(stop, self.registrar.asked_to_leave))
        try:
            namespaces: list[str | None] = list(self.config.namespaces) or [None]
            for namespace in namespaces:
                # NB: one consistent read per namespace serves the recovery and starts the watch, at once (an older
                # resourceVersion would make a 410 Gone, and a second read, likelier)
                listing = await self.own_tasks(cached=False, namespace=namespace)
                await self._recover(listing.items)
                components.append(asyncio.create_task(self._watch(namespace, listing)))
            components.append(asyncio.create_task(self._poll(stop)))
            done, _ = await asyncio.wait([stopped, *components], return_when=asyncio.FIRST_COMPLETED)
            failure = next((t.exception() for t in done if t is not stopped and t.exception()), None)
            if failure is None:
                await self._drain()
        finally:
            drained.set()
            for task in [stopped, *components]:
                task.cancel()
            await asyncio.gather(stopped, *components, return_exceptions=True)
        if failure is not None:
            raise failure
        await self._mark_stopped()
        self.log.info("worker stopped")

    async def _drain(self) -> None:
        """SIGTERM: Draining, no new claims, running tasks get the grace period, the rest go back to Pending."""
        self.draining = True
        assert self.registrar is not None
        self.registrar.phase = "Draining"
        with contextlib.suppress(ApiError):
            await self.registrar.heartbeat()
        running = list(self._executions.values())
        self.log.info("draining", running=len(running), grace=self.config.drain_grace)
        if running:
            waits = [asyncio.create_task(e.finished.wait()) for e in running]
            _, late = await asyncio.wait(waits, timeout=self.config.drain_grace)
            for wait in late:
                wait.cancel()
            for execution in list(self._executions.values()):
                execution.cancel(reasons.NODE_DRAINING, f"node {self.node} is draining")
            await asyncio.gather(*(e.runner for e in running if e.runner), return_exceptions=True)

    async def _mark_stopped(self) -> None:
        """The drain is done: say so, so the controller knows this node is gone rather than still draining."""
        assert self.registrar is not None
        self.registrar.phase = "Stopped"
        try:
            await self.registrar.heartbeat()
        except ApiError as error:
            # NB: left Draining, the node falls silent and the controller marks it NotReady after --stale-after
            self.log.warning("could not mark the node Stopped", error=str(error))

    async def _recover(self, own: list[AgenticTask]) -> None:
        """Tasks Running on this node from a previous life go back to Pending: nobody is executing them."""
        now = self.clock()
        for task in own:
            if (patch := rules.recovered(task, self.node, now)) is not None:
                with contextlib.suppress(Conflict, NotFound):
                    await self.runner.write(task, patch)
                    self.log.warning("recovered orphaned task", task=task.name, namespace=task.namespace)

    # -- finding work ----------------------------------------------------------------------------------------------

    async def _watch(self, namespace: str | None, listed: Listing[AgenticTask]) -> None:
        async for event in self.kube.watch(
            AgenticTask,
            namespace=namespace,
            label_selector=self.selection.label_selector,
            field_selector=self.selection.field_selector,
            timeout_seconds=self.config.watch_timeout,
            listed=listed,
        ):
            if isinstance(event, Relisted):
                for task in event.items:
                    self._consider(task)
                self._listed.add(namespace)
            elif event.type == "DELETED":
                self._known.pop(event.object.metadata.uid or "", None)
                execution = self._executions.get(event.object.metadata.uid or "")
                if execution:
                    execution.cancel(reasons.CANCELLED, "task deleted while running")
            else:
                self._consider(event.object)

    async def _poll(self, stop: asyncio.Event) -> None:
        """Safety net: list this node's tasks now and then, in case a watch event was lost."""
        while not await sleep_unless(stop, self.config.poll_every):
            try:
                # NB: from the apiserver's watch cache (resourceVersion 0): a consistent list would read and decode
                # every task in the namespace from etcd, for each worker, each period
                tasks = await self.own_tasks(cached=True)
            except ApiError as error:
                self.log.warning("poll failed", error=str(error))
                continue
            for task in tasks.items:
                if not self.config.namespaces or task.namespace in self.config.namespaces:
                    self._consider(task)

    async def own_tasks(self, *, cached: bool, namespace: str | None = None) -> Listing[AgenticTask]:
        """The tasks Scheduled or Running on this node (in `namespace`; None: all), never the finished ones, so what
        the poll and the start (recovery, and the watch's first list) read does not grow with the node's history: by
        field where the server can select by `status.phase`, else by the node label, which the controller takes off a
        task when it finishes."""
        return await self.kube.list(
            AgenticTask,
            namespace=namespace,
            label_selector=self.selection.label_selector,
            field_selector=self.selection.field_selector,
            cached=cached,
        )

    def _consider(self, task: AgenticTask) -> None:
        """Record what the watch (or poll) says about one of this node's tasks, and start it if it is claimable."""
        uid = task.metadata.uid or ""
        if task.phase in TERMINAL_PHASES or task.status.assigned_node != self.node:
            self._known.pop(uid, None)
        else:
            self._known[uid] = task
        execution = self._executions.get(uid)
        if execution is not None:
            if task.spec.cancel:
                execution.cancel(reasons.CANCELLED, "spec.cancel set while running")
            return
        self._start(uid)

    def _start(self, uid: str) -> None:
        task = self._known.get(uid)
        if task is None or uid in self._executions or self.draining or not rules.claimable(task, self.node):
            return
        if len(self._executions) >= self.config.max_concurrent_tasks:
            return
        execution = Execution(task)
        self._executions[uid] = execution
        execution.runner = asyncio.create_task(self._run(execution))
        self.metrics.running.set(len(self._executions))

    def _slot_freed(self) -> None:
        # NB: by uid, so only the latest known version of each task is looked at, never a stale copy
        for uid in list(self._known):
            self._start(uid)

    async def _run(self, execution: Execution) -> None:
        try:
            await self.runner.run(execution)
        finally:
            uid = execution.task.metadata.uid or ""
            execution.finished.set()
            self._executions.pop(uid, None)
            self._known.pop(uid, None)  # ran, or found not ours: either way the next event says what it is now
            self.metrics.running.set(len(self._executions))
            if not self.draining:
                self._slot_freed()


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
