"""The worker: finds tasks Scheduled on its node, claims them optimistically, runs executors, writes results.

Its watch (of the tasks Scheduled or Running on its node: `features.tasks_on_node`; all namespaces unless configured)
both finds work and delivers cancels and deletions of running tasks; a slow poll is only a safety net. Decisions are
in `rules`; this module does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from foreman.api.http.errors import RETRYABLE, ApiError, BadRequest, Conflict, Invalid, NotFound, TooLarge
from foreman.api.http.features import Release, tasks_on_node
from foreman.api.http.kube import Listing, Relisted
from foreman.api.http.kubeapi import KubeApi
from foreman.api.models import transcript
from foreman.api.models.agents import Agent
from foreman.api.models.base import DECODE_ERROR, find_condition, utcnow
from foreman.api.models.envelope import ResultEnvelope, bounded
from foreman.api.models.resources import TERMINAL_PHASES, AgenticTask, ModelOffer, NodeSandbox
from foreman.api.models.validation import describe
from foreman.api.runtime.daemon import sleep_unless
from foreman.api.state import reasons, status
from foreman.worker import inference, rules
from foreman.worker.config import WorkerConfig
from foreman.worker.detect import detect
from foreman.worker.executors.agent import AgentExecutorSettings
from foreman.worker.executors.base import (
    ContractViolation,
    ExecutionContext,
    Executor,
    is_configured,
    load_executors,
    requires_inference_server,
)
from foreman.worker.metrics import WorkerMetrics
from foreman.worker.registrar import Offering, Registrar
from foreman.worker.rules import Outcome
from foreman.worker.sandbox import sandbox

log = structlog.get_logger("foreman.worker")
COMPONENT = "foreman-worker"


@dataclass
class Execution:
    task: AgenticTask
    runner: asyncio.Task[None] | None = None
    work: asyncio.Task[ResultEnvelope] | None = None
    cancel_reason: str | None = None
    cancel_message: str = ""
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self, reason: str, message: str) -> None:
        """Stop the executor (not the bookkeeping around it, which still writes the outcome)."""
        if self.cancel_reason is None:
            self.cancel_reason, self.cancel_message = reason, message
        if self.work is not None:
            self.work.cancel()


class Worker:
    def __init__(self, kube: KubeApi, config: WorkerConfig, *, executors: Mapping[str, type[Executor]] | None = None):
        self.kube = kube
        self.config = config
        self.node = config.node_name
        self.selection = tasks_on_node(self.node, Release(1, 20))  # until run() asks the server
        self.claimant = f"{self.node}/{uuid.uuid4().hex[:12]}"
        self.metrics = WorkerMetrics()
        self.executors = {name: cls() for name, cls in (executors or load_executors()).items()}
        self.registrar: Registrar | None = None
        self.draining = False
        self._executions: dict[str, Execution] = {}  # by task uid
        self._known: dict[str, AgenticTask] = {}  # this node's tasks as last seen, by uid
        self._listed: set[str | None] = set()  # the namespaces whose watch has its first snapshot
        self.agent_settings = AgentExecutorSettings.model_validate(self.config.executors.get("agent") or {})
        self.inference_probe = (
            inference.InferenceProbe(self.agent_settings.endpoint, self.agent_settings.api_key_env)
            if self.agent_settings.endpoint
            else None
        )
        self.inference: inference.InferenceState | None = None
        self.speeds = inference.Speeds()
        self.sandbox: NodeSandbox | None = None
        """How the agent's commands are confined here (found at start, when the agent executor is configured)."""
        self.log = log.bind(node=self.node)

    def configured_executors(self) -> list[str]:
        return sorted(
            name
            for name, executor in self.executors.items()
            if is_configured(executor, self.config.executors.get(name, {}))
        )

    def offering(self) -> Offering:
        """What the node offers now: its executors (the agent's only while its model server answers) and models."""
        ready = self.inference is not None and self.inference.ready
        executors = [
            name for name in self.configured_executors() if ready or not requires_inference_server(self.executors[name])
        ]
        details = self.inference_probe.details if self.inference_probe is not None and ready else {}
        models = inference.offers(
            details,
            aliases=self.agent_settings.model_aliases,
            speeds=self.speeds.by_model,
            manual=self.config.installed_models,
        )
        return Offering(executors, models, self.inference, self.sandbox)

    def model_offer(self, name: str | None) -> ModelOffer | None:
        """What the node advertises of a model (by name or alias); with no name, the one model it serves, if one."""
        models = self.offering().models
        if name is None:
            return models[0] if len(models) == 1 else None
        return next((m for m in models if name == m.name or name in m.aliases), None)

    async def find_sandbox(self) -> None:
        """Which sandbox the agent's commands run in, said once at start: where none works, why and how to fix it."""
        if "agent" not in self.configured_executors():
            return
        settings = self.agent_settings
        found = await sandbox.shared(
            settings, allow_commands=settings.allow_commands, workspace_root=settings.workspace_root
        )
        self.sandbox = found.status()
        if not found.runs_commands:
            self.log.error("agents get no run tool: no sandbox works here", reason=found.message)
        elif found.kind == "none":
            self.log.warning("agent commands run UNCONFINED", reason=found.message)
        else:
            self.log.info("agent commands run confined", sandbox=found.kind, version=found.version,
                          network=settings.network, limits=[limit.to_wire() for limit in found.enforced()])  # fmt: skip

    async def check_inference(self) -> None:
        """Ask the node's model server what it serves (when it has one), and log when it comes or goes."""
        if self.inference_probe is None:
            return
        state = await self.inference_probe.check()
        if self.inference is None or self.inference.ready != state.ready:
            log_as = self.log.info if state.ready else self.log.warning
            log_as("model server " + ("answers" if state.ready else "does not answer"), message=state.message)
        self.inference = state

    async def _probe(self, stop: asyncio.Event) -> None:
        """The model server is asked on its own clock, so one that hangs never delays a heartbeat."""
        while not await sleep_unless(stop, self.config.heartbeat_interval):
            await self.check_inference()

    def is_healthy(self) -> bool:
        return self.registrar is not None and not self.registrar.degraded

    def synced(self) -> bool:
        """Registered, recovered, and every watch has listed: from now on it sees each task placed on its node as it
        is placed (what start-up costs the apiserver is behind it)."""
        return len(self._listed) == len(self.config.namespaces or [None])

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Register, recover, work until `stop`, then drain: finish or hand back running tasks, and return."""
        await self.check_inference()
        await self.find_sandbox()
        capability = await detect(self.config)
        self.registrar = Registrar(
            self.kube,
            self.config,
            capability,
            self.metrics,
            running=lambda: len(self._executions),
            offering=self.offering,
        )
        await self.registrar.register()
        self.selection = tasks_on_node(self.node, await self.kube.server_version())
        # NB: heartbeats start as soon as the node is registered: recovering its old tasks lists from a possibly busy
        # apiserver, and a node silent for that long could be judged lost before it ever looked for work. They go on
        # through the drain: the controller judges a silent Draining node lost (its worker was killed mid-drain).
        drained = asyncio.Event()
        components = [asyncio.create_task(self.registrar.run(drained)), asyncio.create_task(self._probe(stop))]
        stopped = asyncio.create_task(stop.wait())
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
        now = utcnow()
        for task in own:
            if task.phase == "Running" and task.status.assigned_node == self.node:
                message = f"worker on {self.node} restarted while the task ran"
                patch = status.requeued(task, now, reasons.WORKER_RESTART_RECOVERY, message, count_attempt=True)
                with contextlib.suppress(Conflict, NotFound):
                    await self._write(task, patch)
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
        execution.runner = asyncio.create_task(self._claim_and_run(execution))

    def _slot_freed(self) -> None:
        # NB: by uid, so only the latest known version of each task is looked at, never a stale copy
        for uid in list(self._known):
            self._start(uid)

    # -- one task --------------------------------------------------------------------------------------------------

    async def _claim_and_run(self, execution: Execution) -> None:
        uid = execution.task.metadata.uid or ""
        try:
            claimed = await self._claim(execution.task)
            if claimed is None:
                return
            execution.task = claimed
            bound = self.log.bind(task=claimed.name, namespace=claimed.namespace, phase="Running")
            bound.info("claimed")
            self.metrics.running.set(len(self._executions))
            started = time.monotonic()
            outcome = await self._execute(execution)
            self.metrics.duration.observe(time.monotonic() - started)
            await self._finish(execution.task, outcome)
            self.metrics.tasks_run.labels(
                outcome.envelope.verdict if outcome.envelope else "", outcome.reason or ""
            ).inc()
            bound.info(
                "finished", reason=outcome.reason, verdict=outcome.envelope.verdict if outcome.envelope else None
            )
        except ApiError as error:
            self.log.warning("task left for the controller to reclaim", task=execution.task.name, error=str(error))
        except Exception as error:  # NB: whatever went wrong, the task ends and its slot is freed
            self.log.exception("task run failed", task=execution.task.name)
            await self._give_up(execution.task, f"{type(error).__name__}: {error}")
        finally:
            execution.finished.set()
            self._executions.pop(uid, None)
            self._known.pop(uid, None)  # ran, or found not ours: either way the next event says what it is now
            self.metrics.running.set(len(self._executions))
            if not self.draining:
                self._slot_freed()

    async def _claim(self, task: AgenticTask) -> AgenticTask | None:
        """The optimistic claim. A 409 means someone moved the task: look again, and go on only if it is still
        Scheduled for this node (so two workers sharing a node name never both run it)."""
        for _ in range(3):
            if not rules.claimable(task, self.node):
                return None
            try:
                return await self._write(task, status.claimed(task, utcnow(), self.claimant))
            except Conflict:
                self.metrics.claim_conflicts.inc()
                try:
                    task = await self.kube.get(AgenticTask, task.name, task.namespace)
                except NotFound:
                    return None
                if rules.claimed_by_us(task, self.claimant):
                    return task  # NB: our claim landed but its answer was lost; the retry conflicted with it
            except NotFound:
                return None
        return None

    async def _execute(self, execution: Execution) -> Outcome:
        task = execution.task
        if undecodable := task.metadata.annotations.get(DECODE_ERROR):
            return Outcome(reason=reasons.UNDECODABLE, message=f"not run: {undecodable}")
        executor = self.executors.get(task.spec.executor)
        if executor is None:
            known = ", ".join(sorted(self.executors)) or "none"
            return Outcome(
                reason=reasons.EXECUTOR_NOT_FOUND,
                message=f"no executor {task.spec.executor!r} on {self.node} (installed: {known})",
            )
        agent = None
        if task.spec.agent_ref:
            try:
                agent = (await self.kube.get(Agent, task.spec.agent_ref, task.namespace)).spec
            except NotFound:
                message = f"Agent {task.spec.agent_ref!r} does not exist in namespace {task.namespace}"
                return Outcome(reason=reasons.AGENT_NOT_FOUND, message=message)
        context = ExecutionContext(
            self.node,
            task.status.attempts,
            self.config.executors.get(task.spec.executor, {}),
            agent=agent,
            publish_transcript=lambda text: self._publish_transcript(execution, text),
            metrics=self.metrics,
            model=self.model_offer(task.spec.model_ref or (agent.model if agent else None)),
            report_speed=self.speeds.observe,
        )
        execution.work = asyncio.create_task(executor.execute(task, context))
        if execution.cancel_reason:  # cancelled while claiming
            execution.work.cancel()
        done, _ = await asyncio.wait([execution.work], timeout=task.spec.timeout_seconds)
        if not done:
            execution.work.cancel()
            await asyncio.gather(execution.work, return_exceptions=True)
            return Outcome(
                reason=reasons.TIMEOUT,
                message=f"executor {executor.name} exceeded timeoutSeconds={task.spec.timeout_seconds}",
            )
        if execution.work.cancelled():
            return Outcome(reason=execution.cancel_reason or reasons.CANCELLED, message=execution.cancel_message)
        error = execution.work.exception()
        if isinstance(error, ContractViolation):
            return Outcome(reason=reasons.EXECUTOR_CONTRACT_VIOLATION, message=str(error))
        if error is not None:
            return Outcome(reason=reasons.EXECUTOR_ERROR, message=f"{type(error).__name__}: {error}")
        return _validated(execution.work.result())

    async def _publish_transcript(self, execution: Execution, text: str) -> None:
        """Store the whole transcript in its ConfigMap (owned by the task, so deleted with it); the first time, name
        it in the task's status too. Best effort: a transcript that cannot be written never fails the task."""
        task = execution.task
        name = transcript.configmap_name(task.name)
        try:
            await self.kube.apply(transcript.configmap(task, text))
            if task.status.transcript_ref != name:
                execution.task = await self.kube.patch_status(
                    AgenticTask, task.name, {"transcriptRef": name}, namespace=task.namespace
                )
        except ApiError as error:
            self.log.warning("transcript not written", task=task.name, error=str(error))

    async def _finish(self, claimed: AgenticTask, outcome: Outcome) -> None:
        """Write the terminal status, optimistically (concurrent edits survive: see `_finish_once`).

        NB: the work is done; losing its result to an API outage would leave the task Running on a live node for
        ever, so lost connections and 5xx are retried (capped backoff) until the write lands or the task moves on.
        """
        failures = 0
        while True:
            try:
                written = await self._finish_once(claimed, outcome)
                break
            except (BadRequest, Invalid, TooLarge) as error:
                # NB: refused for good (a result too large for etcd, one the schema rejects): retrying changes nothing
                self.log.error("result refused by the apiserver", task=claimed.name, error=str(error))
                await self._give_up(claimed, f"the apiserver refused the result: {error}")
                return
            except RETRYABLE as error:
                failures += 1
                delay = min(5.0, 0.2 * 2**failures)
                self.log.warning(
                    "result not written yet, retrying", task=claimed.name, error=str(error), retry_in=delay
                )
                await asyncio.sleep(delay)
        if written is not None and outcome.reason is not None:
            # NB: failures and requeues (timeout, retry, drain hand-back) are Warning Events, as the controller's are;
            # the message is the one the status carries (it says which retry, and when)
            said = find_condition(written.status.conditions, reasons.RUNNING)
            message = said.message if said is not None else outcome.message
            await self.kube.emit_event(written, reason=outcome.reason, message=message, component=COMPONENT,
                                       type="Warning")  # fmt: skip

    async def _finish_once(self, claimed: AgenticTask, outcome: Outcome) -> AgenticTask | None:
        """Optimistic: written first with the claim's resourceVersion, since nothing but its worker usually writes a
        Running task; a 409 (a cancel, an edit, our own earlier write whose answer was lost) re-reads and checks that
        the task is still ours and Running before writing again."""
        task = claimed
        for _ in range(5):
            if (
                task.metadata.uid != claimed.metadata.uid
                or task.phase != "Running"
                or task.status.assigned_node != self.node
            ):
                self.log.warning(
                    "task already finished or moved on; result not written again", task=task.name, phase=task.phase
                )
                return None
            now = utcnow()
            if outcome.reason == reasons.NODE_DRAINING:
                patch = status.requeued(task, now, outcome.reason, outcome.message, count_attempt=False)
            else:
                patch = rules.finished(
                    task, outcome, now, backoff=self.config.retry_backoff, backoff_max=self.config.retry_backoff_max
                )
            try:
                return await self._write(task, patch)
            except NotFound:
                return None  # deleted: nothing to report to
            except Conflict:
                try:
                    task = await self.kube.get(AgenticTask, claimed.name, claimed.namespace)
                except NotFound:
                    return None
        return None  # NB: it kept changing under us; the controller reclaims it if it is left Running

    async def _give_up(self, task: AgenticTask, message: str) -> None:
        """Fail a task this worker runs without its result (ExecutorError, so it may retry): the last resort when
        the run or its terminal write failed in a way nothing else handles. Best effort: left Running, the
        controller reclaims it."""
        try:
            current = await self.kube.get(AgenticTask, task.name, task.namespace)
            if current.phase == "Running" and current.status.assigned_node == self.node:
                outcome = Outcome(reason=reasons.EXECUTOR_ERROR, message=message[:1024])
                patch = rules.finished(current, outcome, utcnow(), backoff=self.config.retry_backoff,
                                       backoff_max=self.config.retry_backoff_max)  # fmt: skip
                await self._write(current, patch)
        except ApiError as error:
            self.log.warning("task left for the controller to reclaim", task=task.name, error=str(error))

    async def _write(self, task: AgenticTask, patch: dict[str, Any]) -> AgenticTask:
        return await self.kube.patch_status(
            AgenticTask, task.name, patch, namespace=task.namespace, resource_version=task.metadata.resource_version
        )


def _validated(result: object) -> Outcome:
    """An executor's return value, checked against the envelope schema before anything is written."""
    try:
        envelope = ResultEnvelope.model_validate(result.model_dump() if isinstance(result, ResultEnvelope) else result)
    except ValidationError as error:
        message = f"executor returned no valid foreman.v1 envelope: {describe(error)}"
        return Outcome(reason=reasons.EXECUTOR_CONTRACT_VIOLATION, message=message)
    return Outcome(envelope=bounded(envelope))
