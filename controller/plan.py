"""One reconcile pass as a pure function: the cache, the queue of placeable tasks, the keys to look at and the time
in, a `Plan` of intents out (status writes, label writes, deletions, nodes to mark NotReady, keys to look at again
later).

The controller loop only applies a plan (`foreman.controller.loop`), as the schedule loop applies `firing.plan`:
every decision of a pass can be read, and tested, without an apiserver.

A pass (1) marks silent nodes NotReady, (2) takes tasks back from lost or draining nodes, (3) decides every task
that changed (cancel, dependencies, backoff), (4) tidies finished tasks (the node label off, deleted when their time
to live is over), (5) places the placeable ones by priority, by the placement policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from foreman.api.lifecycle import node_status, reasons, status
from foreman.api.models.agents import AgentSpec
from foreman.api.models.base import key_of
from foreman.api.models.nodes import FleetNode, NodeSandbox
from foreman.api.models.queues import DEFAULT_QUEUE, TaskQueue, TaskQueueStatus
from foreman.api.models.subtasks import PARENT_LABEL
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.controller.cache import Cache, TaskKey
from foreman.controller.children import AmendChild, child_decision
from foreman.controller.config import ControllerConfig
from foreman.controller.expiry import Expire, ExpireAt, expiry
from foreman.controller.match import Need, Offer, Placer
from foreman.controller.placeable import PlaceableLanes
from foreman.controller.queues import FairShare, QueueLoad, full_queues, shares
from foreman.controller.reclaim import GiveUp, heard_recently, node_is_live, node_went_silent, reclaim
from foreman.controller.rules import Backoff, Blocked, Decision, Fail, Placeable, decide
from foreman.controller.warmth import ModelOnNode, NodeModels
from foreman.controller.warmwait import cold_start_delay, waiting_since, warm_deadline

PlacementOrder = tuple[int, datetime, str]


def need_of(task: AgenticTask, model: str | None, agent: AgentSpec | None = None) -> Need:
    """What a task needs; `model` is the one it runs with (its modelRef, else its Agent's), `agent` the Agent it
    names (whether it runs commands, whether it wants them confined)."""
    capability = task.spec.required_capability
    return Need(
        commands=agent is not None and agent.runs_commands,
        sandbox=capability.sandbox or (agent is not None and agent.needs_sandbox),
        accelerator=capability.accelerator,
        ram_gb=capability.min_ramgb,
        context_tokens=capability.min_context_tokens,
        selector=tuple(sorted(capability.node_selector.items())),
        executor=task.spec.executor,
        model=model,
        gates=tuple(tuple(gate.argv) for gate in task.gates_with(agent)),
    )


def needs(cache: Cache, task: AgenticTask) -> Need:
    """What a task needs, with what the controller knows of its Agent."""
    return need_of(task, cache.model_of(task), cache.agent_of(task))


def offer_of(node: FleetNode) -> Offer:
    capability = node.status.capability
    contexts: dict[str, int | None] = dict.fromkeys(capability.installed_models)
    speeds: dict[str, float] = {}
    served: dict[str, str] = {}
    for model in capability.models:
        for name in (model.name, *model.aliases):
            contexts[name] = model.context_tokens
            served[name] = model.name
            if model.tokens_per_second is not None:
                speeds[name] = model.tokens_per_second
    states = {m.name: ModelOnNode(m.size_gb, m.load_seconds, bool(m.loaded)) for m in capability.models}
    return Offer(
        name=node.name,
        accelerator=capability.accelerator,
        ram_gb=capability.available_ramgb,
        context_tokens=capability.max_context_tokens,
        slots=node.spec.max_concurrent_tasks,
        labels=node.metadata.labels,
        executors=frozenset(capability.executors),
        models=contexts,
        speeds=speeds,
        sandbox=capability.sandbox.kind if capability.sandbox else None,
        allow_commands=allow_commands_of(capability.sandbox),
        warmth=NodeModels(states, served, capability.model_memory_gb),
    )


def allow_commands_of(sandbox: NodeSandbox | None) -> tuple[tuple[str, ...], ...] | None:
    if sandbox is None or sandbox.allow_commands is None:
        return None
    return tuple(tuple(prefix) for prefix in sandbox.allow_commands)


def placement_order(task: AgenticTask) -> PlacementOrder:
    created = task.metadata.creation_timestamp or datetime.max.replace(tzinfo=UTC)
    return (-task.spec.priority, created, task.name)


def no_fit_message(need: Need) -> str:
    wanted = [f"model {need.model}"] if need.model else []
    wanted.append(f"accelerator {need.accelerator}")
    if need.ram_gb:
        wanted.append(f"{need.ram_gb:g} GB RAM")
    if need.context_tokens:
        wanted.append(f"{need.context_tokens} context tokens")
    wanted += [f"{key}={value}" for key, value in need.selector]
    wanted.append(f"executor {need.executor}")
    if need.sandbox:
        wanted.append("a sandbox for commands")
    elif need.commands:
        wanted.append("commands (its Agent has run)")
    if need.gates:
        wanted.append("its gate commands (" + "; ".join(" ".join(argv) for argv in need.gates) + ")")
    return "no Ready FleetNode offers " + ", ".join(wanted)


def gates_message(need: Need) -> str:
    commands = "; ".join(" ".join(argv) for argv in need.gates)
    return (
        f"no Ready FleetNode that fits it allows its gate commands ({commands}): a node runs a gate only when its "
        "argv starts with one of the node's allowed commands (executors.agent.allowCommands)"
    )


@dataclass(frozen=True)
class StatusWrite:
    """One optimistic status write of a task (with its resourceVersion). `warn`: also a Warning Event (a failure,
    a requeue); `relabel`: then make the node label agree; `placed`: a placement (time since creation measured);
    `cold_start`: a placement that loads its model first (policy warm: a Normal Event, counted); `warm_wait`: seconds
    it waited for a warm node before this placement (None: it could not wait for one)."""

    task: AgenticTask
    patch: dict[str, Any]
    reason: str
    message: str
    warn: bool = True
    relabel: bool = False
    placed: bool = False
    cold_start: bool = False
    warm_wait: float | None = None


@dataclass(frozen=True)
class LabelWrite:
    """Make the task's node label (the workers' watch hint) name the node it holds (the status, the truth)."""

    task: AgenticTask


@dataclass(frozen=True)
class TaskDelete:
    """Delete a finished task whose time to live is over, and what it owns (its transcript): nothing else would,
    where no garbage collector runs (`foreman dev up`, the test cluster)."""

    task: AgenticTask


@dataclass(frozen=True)
class NodeNotReady:
    node: FleetNode
    patch: dict[str, Any]
    message: str


@dataclass(frozen=True)
class QueueStatusWrite:
    """A TaskQueue's counts for kubectl's columns (a merge patch of its status; last writer wins, nothing to lose)."""

    queue: TaskQueue
    patch: dict[str, Any]


@dataclass(frozen=True)
class ChildWrite:
    """A merge patch of an agent-made child's spec (controller/children.py: a cancel, its parent's capability)."""

    task: AgenticTask
    amend: AmendChild


Intent = StatusWrite | LabelWrite | TaskDelete | NodeNotReady | QueueStatusWrite | ChildWrite

QUEUE_STATUS_EVERY = timedelta(seconds=5)
"""A TaskQueue's status is written at most this often: its counts move with every task, and nothing decides on them."""


@dataclass
class Plan:
    live: frozenset[str]
    """The nodes tasks may be placed on now (Placeable and heard from)."""
    full: frozenset[str] = frozenset()
    """The queues at their maxRunning after this pass."""
    writes: list[Intent] = field(default_factory=list)
    requeue: dict[TaskKey, datetime] = field(default_factory=dict)
    """Tasks to look at again at a time (retry backoff running out, a finished task's time to live)."""


def plan_pass(
    cache: Cache,
    placeable: PlaceableLanes[TaskKey, PlacementOrder],
    dirty: set[TaskKey],
    now: datetime,
    config: ControllerConfig,
    *,
    live_before: frozenset[str] = frozenset(),
    full_before: frozenset[str] = frozenset(),
    nodes_changed: bool = True,
    write_labels: bool = True,
    queues_written_at: Mapping[str, datetime] | None = None,
) -> Plan:
    """Decide one pass. `dirty`: the tasks to decide again; `live_before`, `full_before`, `nodes_changed`: the last
    pass's live nodes and full queues, and whether a node changed since (then every waiting task's "could anything
    ever fit" is looked at again); `write_labels`: whether workers find their tasks by the node label (older servers)
    rather than by field; `queues_written_at`: when each TaskQueue's status was last written (None: never write it).

    NB: `placeable` is the one piece of state a pass changes: the tasks that may be placed, in lanes by queue, kept in
    placement order between passes, so thousands waiting for a few slots are not sorted again on every event
    (controller/placeable.py).
    """
    dirty = set(dirty)
    plan = Plan(live=frozenset())
    live = _check_nodes(cache, now, config, plan)
    plan.live = frozenset(live)
    _check_placed_tasks(cache, now, config, dirty, plan, write_labels=write_labels)
    _decide(cache, placeable, now, dirty, plan)
    _tidy_finished(cache, now, config, dirty, plan, write_labels=write_labels)
    recheck_all = nodes_changed or plan.live != live_before
    loads = _place(cache, placeable, now, config, live, dirty, recheck_all, full_before, plan)
    if queues_written_at is not None:
        _write_queue_status(cache, placeable, loads, now, queues_written_at, plan)
    return plan


def _check_nodes(cache: Cache, now: datetime, config: ControllerConfig, plan: Plan) -> dict[str, FleetNode]:
    live = {}
    for name, node in cache.nodes.items():
        heard_at = cache.heard_at.get(name)
        if node_is_live(node, heard_at, now, config.stale_after):
            live[name] = node
        elif node_went_silent(node, heard_at, now, config.stale_after):
            message = f"no heartbeat for more than {config.stale_after.total_seconds():g} s"
            plan.writes.append(NodeNotReady(node, node_status.not_ready(node, now, message), message))
    return live


def _check_placed_tasks(
    cache: Cache, now: datetime, config: ControllerConfig, dirty: set[TaskKey], plan: Plan, *, write_labels: bool
) -> None:
    for task in cache.active():
        name = task.status.assigned_node or ""
        heard = heard_recently(cache.heard_at.get(name), now, config.stale_after)
        action = reclaim(task, cache.nodes.get(name), heard, config.max_claim_expiries)
        if isinstance(action, GiveUp):
            patch = status.failed(task, now, action.reason, action.message)
            plan.writes.append(StatusWrite(task, patch, action.reason, action.message))
            dirty.discard(key_of(task))
        elif action is not None:
            patch = status.requeued(
                task, now, action.reason, action.message, count_attempt=action.expired, claim_expired=action.expired
            )
            plan.writes.append(StatusWrite(task, patch, action.reason, action.message, relabel=True))
            dirty.discard(key_of(task))
        elif write_labels and cache.label_is_wrong(task):
            plan.writes.append(LabelWrite(task))


def _decide(
    cache: Cache, placeable: PlaceableLanes[TaskKey, PlacementOrder], now: datetime, dirty: set[TaskKey], plan: Plan
) -> None:
    for key in dirty:
        placeable.discard(key)
        task = cache.task(key)
        if task is None:
            continue
        agents = cache.agents.get(key[0], {})
        decision: Decision | AmendChild | None = decide(task, cache.siblings(key[0]), now, agents, cache.queue_rules)
        if not isinstance(decision, Fail):  # NB: a Pending child is refused before it waits; a placed one cancelled
            decision = _as_child(cache, key, task, agents) or decision
        if isinstance(decision, AmendChild):
            plan.writes.append(ChildWrite(task, decision))
        elif isinstance(decision, Placeable):
            placeable.add(key, placement_order(task), cache.queue_of(task))
        elif isinstance(decision, Fail):
            patch = status.failed(task, now, decision.reason, decision.message, verdict=decision.verdict)
            plan.writes.append(StatusWrite(task, patch, decision.reason, decision.message))
        elif isinstance(decision, Blocked):
            if status.needs_blocked_write(task, (decision.reason, decision.message)):
                patch = status.blocked(task, now, decision.reason, decision.message)
                plan.writes.append(StatusWrite(task, patch, decision.reason, decision.message, warn=False))
        elif isinstance(decision, Backoff):
            plan.requeue[key] = decision.until


def _as_child(
    cache: Cache, key: TaskKey, task: AgenticTask, agents: Mapping[str, AgentSpec]
) -> Fail | AmendChild | None:
    """What an agent-made child's parent and its Agent say of it (controller/children.py); None for other tasks."""
    if PARENT_LABEL not in task.metadata.labels:
        return None
    parent = (key[0], task.metadata.labels[PARENT_LABEL])
    labelled = (t for k in cache.children(parent) if (t := cache.task(k)) is not None)
    return child_decision(task, cache.task(parent), labelled, agents)


def _tidy_finished(
    cache: Cache, now: datetime, config: ControllerConfig, dirty: set[TaskKey], plan: Plan, *, write_labels: bool
) -> None:
    """What a finished task still needs: deleting when its time to live is over; else, where workers select by the
    node label, the label off (so a worker's lists hold only its unfinished tasks, however many it ran), and a look
    again when its time comes.

    NB: a task just finished may be the last dependant an upstream was kept for: its finished upstreams are looked
    at again too.
    """
    finished = {key: task for key in dirty if (task := cache.task(key)) and task.phase in TERMINAL_PHASES}
    upstreams = {(ns, name) for (ns, _), task in finished.items() for name in task.spec.depends_on}
    for key in upstreams - finished.keys():
        if (upstream := cache.task(key)) is not None and upstream.phase in TERMINAL_PHASES:
            finished[key] = upstream
    for key, task in finished.items():
        dependants = (d for k in cache.dependants(key) if (d := cache.task(k)) is not None)
        decision = expiry(task, dependants, now, config.ttl, agent=cache.agent_of(task))
        if isinstance(decision, Expire):
            plan.writes.append(TaskDelete(task))
            continue
        if isinstance(decision, ExpireAt):
            plan.requeue[key] = decision.when
        if write_labels and cache.label_is_wrong(task):
            plan.writes.append(LabelWrite(task))


def _place(
    cache: Cache,
    placeable: PlaceableLanes[TaskKey, PlacementOrder],
    now: datetime,
    config: ControllerConfig,
    live: dict[str, FleetNode],
    dirty: set[TaskKey],
    recheck_all: bool,
    full_before: frozenset[str],
    plan: Plan,
) -> dict[str, QueueLoad]:
    """Place tasks while any node has a free slot, the queues taking turns by fair share (each in priority order);
    then say which could never fit, and which wait for their queue's cap. Returns the queues' loads after the pass.

    NB: with thousands of tasks waiting for a handful of slots this runs on every event, so it stops at the first
    full fleet, and looks again at "could anything ever fit" only for new tasks or when nodes changed (and at a
    queue's tasks when it filled up or got room).
    """
    loads = cache.queue_loads()
    if not placeable:
        plan.full = full_queues(cache.queue_rules, loads)
        return loads
    offers = [offer_of(node) for node in live.values() if node.status.phase == "Ready"]
    placer = Placer(offers, cache.usage(), policy=config.placement, queued=_queued_models(cache, placeable, offers))
    with contextlib.ExitStack() as walks:
        lines = {lane: walks.enter_context(contextlib.closing(q.in_order())) for lane, q in placeable.lanes.items()}
        share = FairShare(lines, loads, cache.queue_rules)
        while placer.has_capacity() and (turn := share.next()) is not None:
            _, key = turn
            task = cache.task(key)
            if task is None:
                share.skipped()
                continue
            need = needs(cache, task)
            delay = cold_start_delay(cache, task, config.cold_start_delay)
            deadline = warm_deadline(need, task, placer, now, delay)
            node = placer.place(need, share.capped_accelerators(), warm_only=deadline is not None)
            if node is None:
                if deadline is not None:
                    plan.requeue[key] = deadline  # NB: then it starts cold, if no warm slot freed meanwhile
                share.skipped()
                continue
            share.placed(placer.offers[node].accelerator)
            placeable.discard(key)
            # NB: its wait is counted where it could wait for a warm node: within its delay (it got one), or past it
            # while another node had its model loaded (it started cold); asked only of a cold start
            cold = placer.last_cost > 0
            waited = deadline is not None or (cold and delay > 0 and placer.warm_somewhere(need, besides=node))
            plan.writes.append(_placement(task, need, node, placer.last_cost, now, delay if waited else 0.0))
    loads = share.loads
    plan.full = share.full_queues()
    # NB: iterating the queue already walks a snapshot of it
    recheck: Iterable[TaskKey] = (
        placeable
        if recheck_all
        else {*(k for k in dirty if k in placeable), *placeable.keys_in(plan.full ^ full_before)}
    )
    for key in recheck:
        waiting = cache.task(key)
        if waiting is None:
            continue
        need = needs(cache, waiting)
        why = why_held(need, placer, placeable.lane_of(key) or DEFAULT_QUEUE, plan.full)
        if not status.needs_blocked_write(waiting, why):
            continue
        if why is None:
            # NB: the reason counted and logged is the one written: unblocking is not NoFittingNode
            patch, reason, message = status.unblocked(waiting, now), status.unblocked_reason(waiting), ""
        else:
            patch, (reason, message) = status.blocked(waiting, now, *why), why
        plan.writes.append(StatusWrite(waiting, patch, reason, message, warn=False))
    return loads


def _placement(
    task: AgenticTask, need: Need, node: str, load_seconds: float, now: datetime, delay: float
) -> StatusWrite:
    """`delay`: how long the task could wait for a warm node (0: it could not: no node has its model loaded, or
    its coldStartDelay is 0); its wait is counted only then."""
    patch = status.placed(task, node, now)
    message = f"assigned to FleetNode {node}"
    waited = max(min((now - waiting_since(task)).total_seconds(), delay), 0.0) if delay > 0 else None
    if load_seconds > 0:
        message += f", where {need.model} must be loaded first (about {load_seconds:.0f} s)"
        return StatusWrite(task, patch, reasons.COLD_START, message, warn=False, relabel=True, placed=True,
                           cold_start=True, warm_wait=waited)  # fmt: skip
    return StatusWrite(task, patch, reasons.FLEET_NODE_ASSIGNED, message, warn=False, relabel=True, placed=True,
                       warm_wait=waited)  # fmt: skip


def _queued_models(
    cache: Cache, placeable: PlaceableLanes[TaskKey, PlacementOrder], offers: Iterable[Offer]
) -> dict[str, int]:
    """The placeable tasks by model: what evicting a model costs (policy warm). NB: counted only where a node says
    its model memory, the one case evictions are weighed: it walks every waiting task."""
    if not any(offer.warmth.memory_gb is not None for offer in offers):
        return {}
    queued: dict[str, int] = {}
    for key in placeable:
        if (task := cache.task(key)) is not None and (model := cache.model_of(task)) is not None:
            queued[model] = queued.get(model, 0) + 1
    return queued


def why_held(need: Need, placer: Placer, queue: str, full: frozenset[str]) -> tuple[str, str] | None:
    """What holds a placeable task back beyond a busy slot: nothing can ever take it, or its queue is at its cap
    (`full`: the queues at their cap). None: it only waits for a free slot. The Blocked condition says it."""
    if not placer.fits_when_empty(need):
        if need.gates and placer.fits_when_empty(dataclasses.replace(need, gates=())):
            return reasons.GATE_NOT_ALLOWED, gates_message(need)
        return reasons.NO_FITTING_NODE, no_fit_message(need)
    if queue in full:
        return reasons.QUEUE_FULL, f"TaskQueue {queue} is at its maxRunning"
    return None


def _write_queue_status(
    cache: Cache,
    placeable: PlaceableLanes[TaskKey, PlacementOrder],
    loads: Mapping[str, QueueLoad],
    now: datetime,
    written_at: Mapping[str, datetime],
    plan: Plan,
) -> None:
    """Each TaskQueue's counts, when they changed and the last write is old enough."""
    fleet_share = shares(loads)
    for name, queue in cache.queues.items():
        if (last := written_at.get(name)) is not None and now - last < QUEUE_STATUS_EVERY:
            continue  # NB: before counting: this runs on every pass
        counted = TaskQueueStatus(
            running=loads[name].running if name in loads else 0,
            pending=len(placeable.lanes[name]) if name in placeable.lanes else 0,
            share=round(fleet_share.get(name, 0.0), 3),
        )
        if counted != queue.status:
            plan.writes.append(QueueStatusWrite(queue, counted.model_dump(by_alias=True)))
