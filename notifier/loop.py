"""`foreman notifier`: delivers finished tasks' results to their sinks, at least once, and records how far each got.

Decide, apply, requeue: the watches keep the finished tasks that notify (and the Agents, whose notify list is their
tasks' default); the one work queue says which to look at; `due.plan` says which deliveries are due; they are sent
together and their outcomes written back in one status write per task (`due.record`); a Pending one is looked at
again when its backoff runs out. Only the leader of the Lease delivers (the controller's elector, handed in).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from foreman.api.http.client import Kube, Relisted
from foreman.api.http.errors import ApiError, NotFound
from foreman.api.models import transcript
from foreman.api.models.agents import Agent, AgentSpec
from foreman.api.models.base import Key, is_newer, key_of, utcnow
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.api.runtime.daemon import run_components
from foreman.api.runtime.workqueue import WorkQueue
from foreman.notifier import due
from foreman.notifier.metrics import NotifierMetrics
from foreman.notifier.payload import payload
from foreman.notifier.sinks import Sender

log = structlog.get_logger("foreman.notifier")

TRANSCRIPT_LENGTH = 256 * 1024
"""The longest transcript a payload carries (its end: the outcome); `include: transcript` asks for it."""


class Leadership(Protocol):
    """The Lease elector (foreman.controller.leader.LeaderElector is the one)."""

    is_leader: bool
    trouble: str | None

    async def run(self, stop: asyncio.Event) -> None: ...


@dataclass(frozen=True)
class NotifierConfig:
    namespaces: tuple[str, ...] = ()
    """Watch only these (default all)."""
    retry: due.RetryPolicy = field(default_factory=due.RetryPolicy)
    concurrency: int = 32
    """Tasks delivered at once."""
    dashboard_url: str | None = None
    """Where `foreman dashboard` is reached, for the link back in each payload."""
    resync_every: float = 60.0
    watch_timeout: int = 60
    unhealthy_after_failures: int = 5


class Notifier:
    def __init__(
        self,
        kube: Kube,
        sender: Sender,
        config: NotifierConfig | None = None,
        *,
        elect: Callable[[Callable[[bool], None]], Leadership] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.kube = kube
        self.sender = sender
        self.config = config or NotifierConfig()
        self.clock = clock
        self.metrics = NotifierMetrics()
        self.queue: WorkQueue[Key] = WorkQueue(lambda: self.clock().timestamp(), max_delay=30.0)
        self.tasks: dict[Key, AgenticTask] = {}
        """Finished tasks that notify, or may through their Agent."""
        self.agents: dict[Key, AgentSpec] = {}
        self._synced: dict[str, bool] = {}
        self._leading = asyncio.Event()
        self.elector = elect(self._leadership_changed) if elect is not None else None
        if self.elector is None:
            self._leading.set()

    # -- health ----------------------------------------------------------------------------------------------------

    def is_healthy(self) -> bool:
        return self.kube.consecutive_failures < self.config.unhealthy_after_failures

    def is_ready(self) -> bool:
        synced = bool(self._synced) and all(self._synced.values())
        return synced and self.is_healthy() and (self.elector is None or self.elector.trouble is None)

    def _leadership_changed(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        if leading:
            self._leading.set()
            self.queue.add_all(self.tasks)  # NB: what the last leader left undone is due here now
        else:
            self._leading.clear()

    # -- running ---------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        namespaces: tuple[str | None, ...] = self.config.namespaces or (None,)
        self._synced = {f"{kind}/{ns or '*'}": False for kind in ("tasks", "agents") for ns in namespaces}
        components: list[Coroutine[Any, Any, None]] = [
            *(self._watch_tasks(namespace) for namespace in namespaces),
            *(self._watch_agents(namespace) for namespace in namespaces),
            self._deliver_forever(),
        ]
        self.metrics.leader.set(1 if self._leading.is_set() else 0)
        try:
            await run_components(stop, components, elector=self.elector.run(stop) if self.elector else None)
        finally:
            log.info("notifier stopped")

    async def _watch_tasks(self, namespace: str | None) -> None:
        async for event in self.kube.watch(AgenticTask, namespace=namespace, timeout_seconds=self.config.watch_timeout):
            if isinstance(event, Relisted):
                for key in [k for k in self.tasks if namespace is None or k[0] == namespace]:
                    del self.tasks[key]
                for task in event.items:
                    self._store(task)
                self._synced[f"tasks/{namespace or '*'}"] = True
            elif event.type == "DELETED":
                self.tasks.pop(key_of(event.object), None)
                self.queue.remove(key_of(event.object))
            else:
                self._store(event.object)

    async def _watch_agents(self, namespace: str | None) -> None:
        async for event in self.kube.watch(Agent, namespace=namespace, timeout_seconds=self.config.watch_timeout):
            if isinstance(event, Relisted):
                for key in [k for k in self.agents if namespace is None or k[0] == namespace]:
                    del self.agents[key]
                changed = [(agent, True) for agent in event.items]
                self._synced[f"agents/{namespace or '*'}"] = True
            else:
                changed = [(event.object, event.type != "DELETED")]
            for agent, exists in changed:
                key = key_of(agent)
                if exists:
                    self.agents[key] = agent.spec
                else:
                    self.agents.pop(key, None)
                self.queue.add_all(k for k, task in self.tasks.items() if (k[0], task.spec.agent_ref) == key)

    def _store(self, task: AgenticTask) -> None:
        """Keep a finished task that notifies or names an Agent (newer than what is kept: an answer to our own write
        must not be overwritten by an older watch event arriving after it)."""
        key = key_of(task)
        if task.phase not in TERMINAL_PHASES or not (task.spec.notify or task.spec.agent_ref):
            self.tasks.pop(key, None)
            return
        old = self.tasks.get(key)
        if old is None or is_newer(task.metadata.resource_version, old.metadata.resource_version):
            self.tasks[key] = task
            self.queue.add(key)

    async def _deliver_forever(self) -> None:
        limit = asyncio.Semaphore(self.config.concurrency)

        async def guarded(key: Key) -> None:
            async with limit:
                try:
                    await self.deliver(key)
                except ApiError as error:
                    log.warning("could not record deliveries", task=f"{key[0]}/{key[1]}", error=str(error))
                    self.queue.retry(key)

        while True:
            await self._leading.wait()
            await self.queue.wait(self.config.resync_every)
            keys = self.queue.take()
            if not self._leading.is_set():
                self.queue.add_all(keys)
                continue
            await asyncio.gather(*(guarded(key) for key in keys))

    async def deliver(self, key: Key) -> None:
        """Send what is due of one task, then write all the outcomes at once (one status write)."""
        task = self.tasks.get(key)
        if task is None:
            return
        agent = self.agents.get((key[0], task.spec.agent_ref)) if task.spec.agent_ref else None
        decided = due.plan(task, agent, self.clock())
        if decided.sends:
            outcomes = await asyncio.gather(*(self._send(task, send) for send in decided.sends))
            deliveries = due.record(
                task.status.deliveries, zip(decided.sends, outcomes, strict=True), self.clock(), self.config.retry
            )
            try:
                updated = await self.kube.patch_status(
                    AgenticTask, task.name, {"deliveries": [d.to_wire() for d in deliveries]}, namespace=task.namespace
                )
            except NotFound:
                self.tasks.pop(key, None)
                return
            self.metrics.status_writes.inc()
            self._store(updated)
            decided = due.plan(self.tasks.get(key, updated), agent, self.clock())
        if decided.wake_at is not None:
            self.queue.add_at(key, decided.wake_at.timestamp())
        self.queue.forget(key)

    async def _send(self, task: AgenticTask, send: due.Send) -> due.Outcome:
        text = await self._transcript(task) if "transcript" in send.entry.include else None
        body = payload(task, dashboard=self.config.dashboard_url, transcript=text)
        started = time.monotonic()
        outcome = await self.sender.send(task, send, body)
        sink = send.entry.sink_type
        self.metrics.latency.labels(sink).observe(time.monotonic() - started)
        self.metrics.deliveries.labels(sink, outcome.result).inc()
        log.info(
            "delivery tried",
            task=f"{task.namespace}/{task.name}",
            sink=sink,
            delivery=send.id,
            attempt=send.attempt,
            outcome=outcome.result,
            detail=outcome.detail,
        )
        return outcome

    async def _transcript(self, task: AgenticTask) -> str:
        name = task.status.transcript_ref
        if not name:
            return ""
        try:
            body = await self.kube.get_raw("v1", "ConfigMap", name, task.namespace)
        except ApiError as error:
            return f"(transcript {name} could not be read: {error})"[:1024]
        if not transcript.owned_by(body, task):
            # NB: status.transcriptRef names it; only a ConfigMap the task owns goes out (not whatever one it names)
            return f"(ConfigMap {name} is not this task's transcript)"
        text = str((body.get("data") or {}).get(transcript.KEY, ""))
        return text[-TRANSCRIPT_LENGTH:]
