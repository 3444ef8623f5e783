"""One task's run on this node: claim it, execute it, publish its transcript, write its outcome.

The moves are chosen in `rules`; this module carries them out, optimistically (each write carries the resourceVersion
it was decided on), and waits out retryable failures through the worker's one retry queue (`retries`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from foreman.api.http.client import Kube
from foreman.api.http.errors import RETRYABLE, ApiError, BadRequest, Conflict, Invalid, NotFound, TooLarge
from foreman.api.lifecycle import reasons, upstream
from foreman.api.models import transcript
from foreman.api.models.agents import Agent
from foreman.api.models.base import DECODE_ERROR, find_condition
from foreman.api.models.envelope import ResultEnvelope, Usage, bounded
from foreman.api.models.tasks import AgenticTask, Payload
from foreman.api.models.validation import describe
from foreman.worker import rules
from foreman.worker.children import KubeFleet, may_create
from foreman.worker.config import WorkerConfig
from foreman.worker.executors.base import ContractViolation, ExecutionContext, Executor
from foreman.worker.metrics import WorkerMetrics
from foreman.worker.offering import NodeOffer
from foreman.worker.retries import Retries
from foreman.worker.rules import Outcome

log = structlog.get_logger("foreman.worker")
COMPONENT = "foreman-worker"
CLAIM_TRIES = 3
"""Claims tried per task: a conflict re-reads the task, and only one still Scheduled here is claimed again; a lost
connection waits the task's backoff first. Past them, an unclaimed task goes back to Pending by the claim timeout."""
FINISH_TRIES = 5
"""Terminal writes tried against a task that keeps changing, before it is left to the controller's reclaim."""


@dataclass
class Execution:
    """One task this worker has taken on, from its claim until its outcome is written."""

    task: AgenticTask
    runner: asyncio.Task[None] | None = None
    work: asyncio.Task[ResultEnvelope] | None = None
    cancel_reason: str | None = None
    cancel_message: str = ""
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    usage: Usage | None = None
    """What the attempt consumed so far, as its executor last reported (`ExecutionContext.report_usage`)."""
    transcript_ref: str | None = None
    """The attempt's transcript ConfigMap, once one was written."""

    @property
    def attempt(self) -> int:
        """This attempt's number (the claim began it)."""
        history = self.task.status.attempt_history
        return history[-1].number if history else 1

    def cancel(self, reason: str, message: str) -> None:
        """Stop the executor (not the bookkeeping around it, which still writes the outcome)."""
        if self.cancel_reason is None:
            self.cancel_reason, self.cancel_message = reason, message
        if self.work is not None:
            self.work.cancel()


class TaskRunner:
    def __init__(
        self,
        kube: Kube,
        config: WorkerConfig,
        *,
        claimant: str,
        offer: NodeOffer,
        metrics: WorkerMetrics,
        retries: Retries,
        clock: Callable[[], datetime],
    ):
        self.kube = kube
        self.config = config
        self.node = config.node_name
        self.claimant = claimant
        self.offer = offer
        self.metrics = metrics
        self.retries = retries
        self.clock = clock
        self.log = log.bind(node=self.node)

    async def run(self, execution: Execution) -> None:
        """Claim, execute, write the outcome; whatever goes wrong, the task ends (or is left for the controller)."""
        try:
            claimed = await self.claim(execution.task)
            if claimed is None:
                return
            execution.task = claimed
            bound = self.log.bind(task=claimed.name, namespace=claimed.namespace, phase="Running")
            bound.info("claimed")
            started = time.monotonic()
            outcome = await self.execute(execution)
            self.metrics.duration.observe(time.monotonic() - started)
            if step := rules.escalation_for(execution.task, outcome):
                bound.info("escalating", to_model=step.escalation.model, reason=step.reason)
            written = await self.finish(execution.task, outcome)
            if written is not None and step:
                self.metrics.agent_escalations.labels(step.from_model, step.escalation.model, step.reason).inc()
                await self.kube.emit_event(written, reason=reasons.ESCALATED, message=step.message,
                                           component=COMPONENT, type="Warning")  # fmt: skip
            verdict = outcome.envelope.verdict if outcome.envelope else None
            self.metrics.tasks_run.labels(verdict or "", outcome.reason or "").inc()
            bound.info("finished", reason=outcome.reason, verdict=verdict)
        except ApiError as error:
            self.log.warning("task left for the controller to reclaim", task=execution.task.name, error=str(error))
        except Exception as error:  # NB: whatever went wrong, the task ends and its slot is freed
            self.log.exception("task run failed", task=execution.task.name)
            await self.give_up(execution.task, f"{type(error).__name__}: {error}")
        finally:
            self.retries.forget(execution.task.metadata.uid or "")

    async def claim(self, task: AgenticTask) -> AgenticTask | None:
        """The optimistic claim. A 409 means someone moved the task: look again, and go on only if it is still
        Scheduled for this node (so two workers sharing a node name never both run it)."""
        for _ in range(CLAIM_TRIES):
            if not rules.claimable(task, self.node):
                return None
            try:
                return await self.write(task, rules.claim(task, self.clock(), self.claimant))
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
            except RETRYABLE as error:
                self.log.warning("claim not written yet, retrying", task=task.name, error=str(error))
                await self.retries.backoff(task.metadata.uid or "")
        return None

    async def execute(self, execution: Execution) -> Outcome:
        task = execution.task
        if undecodable := task.metadata.annotations.get(DECODE_ERROR):
            return Outcome(reason=reasons.UNDECODABLE, message=f"not run: {undecodable}")
        executor = self.offer.executors.get(task.spec.executor)
        if executor is None:
            known = ", ".join(sorted(self.offer.executors)) or "none"
            return Outcome(
                reason=reasons.EXECUTOR_NOT_FOUND,
                message=f"no executor {task.spec.executor!r} on {self.node} (installed: {known})",
            )
        agent = None
        if agent_ref := task.acting_agent_ref:
            try:
                agent = (await self.kube.get(Agent, agent_ref, task.namespace)).spec
            except NotFound:
                message = f"Agent {agent_ref!r} does not exist in namespace {task.namespace}"
                return Outcome(reason=reasons.AGENT_NOT_FOUND, message=message)
        upstreams: dict[str, ResultEnvelope | None] = {}
        payload = task.spec.payload.to_wire()
        quotes = upstream.references(payload)
        if task.spec.depends_on and (quotes or (agent is not None and agent.inherit_upstream)):
            upstreams = await self.upstreams(task)
            resolved = upstream.resolve(payload, upstreams, task.spec.depends_on)
            if isinstance(resolved, upstream.Missing):
                return Outcome(reason=reasons.UPSTREAM_OUTPUT_MISSING, message=resolved.message)
            spec = task.spec.model_copy(update={"payload": Payload.model_validate(resolved)})
            task = execution.task = task.model_copy(update={"spec": spec})
        context = ExecutionContext(
            self.node,
            task.status.attempts,
            self.offer.settings(task.spec.executor),
            agent=agent,
            publish_transcript=lambda text: self.publish_transcript(execution, text),
            report_usage=lambda usage: setattr(execution, "usage", usage),
            metrics=self.metrics,
            model=self.offer.model_context(task.spec.executor, task.model_with(agent)),
            upstreams=upstreams,
            fleet=KubeFleet(self.kube, task, self.clock) if may_create(task, agent) else None,
        )
        outcome = await self._outcome(execution, executor, context)
        ran = dataclasses.replace(
            outcome, usage=execution.usage, transcript_ref=execution.transcript_ref, model=task.model_with(agent),
            ladder=tuple(task.escalation_with(agent)), review=task.review_with(agent),
            pull_request=task.pull_request_with(agent),
        )  # fmt: skip
        return rules.gates_unmet(task.gates_with(agent), ran)

    async def upstreams(self, task: AgenticTask) -> dict[str, ResultEnvelope | None]:
        """Each upstream's envelope (none: it has none, or is gone)."""
        found: dict[str, ResultEnvelope | None] = {}
        for name in task.spec.depends_on:
            try:
                found[name] = (await self.kube.get(AgenticTask, name, task.namespace)).status.result
            except NotFound:
                found[name] = None
        return found

    async def _outcome(self, execution: Execution, executor: Executor, context: ExecutionContext) -> Outcome:
        """Run the executor under the task's timeout and cancels; what it returned, or why it returned nothing."""
        task = execution.task
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
        return validated(execution.work.result())

    async def publish_transcript(self, execution: Execution, text: str) -> None:
        """Store the attempt's whole transcript in its ConfigMap (owned by the task, so deleted with it); the first
        time, name it in the task's status too. Best effort: a transcript that cannot be written never fails the
        task."""
        task = execution.task
        name = transcript.configmap_name(task.name, execution.attempt)
        try:
            await self.kube.apply(transcript.configmap(task, text, execution.attempt))
            execution.transcript_ref = name
            if task.status.transcript_ref != name:
                execution.task = await self.kube.patch_status(
                    AgenticTask, task.name, {"transcriptRef": name}, namespace=task.namespace
                )
        except ApiError as error:
            self.log.warning("transcript not written", task=task.name, error=str(error))

    async def finish(self, claimed: AgenticTask, outcome: Outcome) -> AgenticTask | None:
        """Write the terminal status, optimistically (concurrent edits survive: see `_finish_once`).

        NB: the work is done; losing its result to an API outage would leave the task Running on a live node for
        ever, so lost connections and 5xx are retried (the task's backoff in the retry queue) until the write lands
        or the task moves on.
        """
        key = claimed.metadata.uid or ""
        while True:
            try:
                written = await self._finish_once(claimed, outcome)
                break
            except (BadRequest, Invalid, TooLarge) as error:
                # NB: refused for good (a result too large for etcd, one the schema rejects): retrying changes nothing
                self.log.error("result refused by the apiserver", task=claimed.name, error=str(error))
                await self.give_up(claimed, f"the apiserver refused the result: {error}")
                return None
            except RETRYABLE as error:
                self.log.warning("result not written yet, retrying", task=claimed.name, error=str(error))
                await self.retries.backoff(key)
        if written is not None and outcome.reason is not None:
            # NB: failures and requeues (timeout, retry, drain hand-back) are Warning Events, as the controller's are;
            # the message is the one the status carries (it says which retry, and when)
            said = find_condition(written.status.conditions, reasons.RUNNING)
            message = said.message if said is not None else outcome.message
            await self.kube.emit_event(written, reason=outcome.reason, message=message, component=COMPONENT,
                                       type="Warning")  # fmt: skip
        return written

    async def _finish_once(self, claimed: AgenticTask, outcome: Outcome) -> AgenticTask | None:
        """Optimistic: written first with the claim's resourceVersion, since nothing but its worker usually writes a
        Running task; a 409 (a cancel, an edit, our own earlier write whose answer was lost) re-reads and checks that
        the task is still ours and Running before writing again."""
        task = claimed
        for _ in range(FINISH_TRIES):
            if not rules.still_running_here(task, claimed, self.node):
                self.log.warning(
                    "task already finished or moved on; result not written again", task=task.name, phase=task.phase
                )
                return None
            patch = rules.finished(
                task,
                outcome,
                self.clock(),
                backoff=self.config.retry_backoff,
                backoff_max=self.config.retry_backoff_max,
            )
            try:
                return await self.write(task, patch)
            except NotFound:
                return None  # deleted: nothing to report to
            except Conflict:
                try:
                    task = await self.kube.get(AgenticTask, claimed.name, claimed.namespace)
                except NotFound:
                    return None
        return None  # NB: it kept changing under us; the controller reclaims it if it is left Running

    async def give_up(self, task: AgenticTask, message: str) -> None:
        """Fail a task this worker runs without its result (ExecutorError, so it may retry): the last resort when
        the run or its terminal write failed in a way nothing else handles. Best effort: left Running, the
        controller reclaims it."""
        try:
            current = await self.kube.get(AgenticTask, task.name, task.namespace)
            if rules.still_running_here(current, task, self.node):
                outcome = Outcome(reason=reasons.EXECUTOR_ERROR, message=message[:1024])
                patch = rules.finished(current, outcome, self.clock(), backoff=self.config.retry_backoff,
                                       backoff_max=self.config.retry_backoff_max)  # fmt: skip
                await self.write(current, patch)
        except ApiError as error:
            self.log.warning("task left for the controller to reclaim", task=task.name, error=str(error))

    async def write(self, task: AgenticTask, patch: dict[str, Any]) -> AgenticTask:
        return await self.kube.patch_status(
            AgenticTask, task.name, patch, namespace=task.namespace, resource_version=task.metadata.resource_version
        )


def validated(result: object) -> Outcome:
    """An executor's return value, checked against the envelope schema before anything is written."""
    try:
        envelope = ResultEnvelope.model_validate(result.model_dump() if isinstance(result, ResultEnvelope) else result)
    except ValidationError as error:
        message = f"executor returned no valid foreman.v1 envelope: {describe(error)}"
        return Outcome(reason=reasons.EXECUTOR_CONTRACT_VIOLATION, message=message)
    return Outcome(envelope=bounded(envelope))
