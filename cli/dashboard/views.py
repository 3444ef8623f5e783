"""What each dashboard page shows, as JSON-ready dicts: pure functions of the objects the server watches.

The server re-renders a page's view whenever what it watches changes (and on a clock tick, for ages) and sends it
only when it differs; the page draws what it gets. Everything here is tested without a server or a browser.
"""

from __future__ import annotations

import graphlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import yaml

from foreman.api.cron.expression import ScheduleError, parse
from foreman.api.lifecycle import reasons, subtasks
from foreman.api.models import transcript
from foreman.api.models.base import find_condition, wire_time
from foreman.api.models.envelope import PASSING_VERDICTS
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import DEFAULT_QUEUE
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.subtasks import PARENT_LABEL
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.cli.render import age, delivery_rows, last_line, reason_of, sandbox_summary
from foreman.controller.cache import Cache
from foreman.controller.waiting import Waiting, line_up

Tone = Literal["pending", "blocked", "scheduled", "running", "passed", "not-passed", "failed", "missing"]
HeartbeatLevel = Literal["fresh", "late", "stale", "unknown"]
Key = tuple[str, str]
"""(namespace, name) of a namespaced object."""

NO_QUEUE = "-"
"""The position of a task not in a line (not Pending, or held by something other than a slot)."""


def tone(task: AgenticTask) -> Tone:
    """The colour a task is drawn in: its phase, with Succeeded split by verdict and Pending by whether it waits."""
    phase = task.phase
    if phase == "Succeeded":
        return "passed" if task.status.verdict in PASSING_VERDICTS else "not-passed"
    if phase == "Failed":
        return "failed"
    if phase == "Pending":
        blocked = find_condition(task.status.conditions, "Blocked")
        return "blocked" if blocked is not None and blocked.status == "True" else "pending"
    return "scheduled" if phase == "Scheduled" else "running"


def heartbeat_level(last: datetime | None, now: datetime, stale_after: float) -> HeartbeatLevel:
    """fresh, then late (amber) after a third of the controller's staleness threshold (three heartbeats missed at
    the defaults, 10 s and 90 s), then stale (red) once the controller would call the node NotReady."""
    if last is None:
        return "unknown"
    seconds = (now - last).total_seconds()
    if seconds >= stale_after:
        return "stale"
    return "late" if seconds >= stale_after / 3 else "fresh"


def _iso(moment: datetime | None) -> str | None:
    return wire_time(moment.replace(microsecond=0)) if moment else None


def _ref(task: AgenticTask) -> dict[str, Any]:
    return {"namespace": task.namespace or "", "name": task.name, "phase": task.phase, "tone": tone(task)}


# -- fleet -----------------------------------------------------------------------------------------------------------


def node_card(node: FleetNode, placed: Iterable[AgenticTask], now: datetime, stale_after: float) -> dict[str, Any]:
    """One FleetNode as a card; `placed` are the tasks Scheduled or Running on it (its slots)."""
    status, cap = node.status, node.status.capability
    in_slots = sorted((t for t in placed if t.phase in ("Scheduled", "Running")), key=lambda t: (t.namespace, t.name))
    count = f" x{cap.accelerator_count}" if cap.accelerator_count else ""
    context = cap.max_context_tokens or None
    return {
        "name": node.name,
        "phase": status.phase or "Unknown",
        "accelerator": f"{cap.accelerator}{count}",
        "ram": {"used": round(max(cap.total_ramgb - cap.available_ramgb, 0), 1), "total": cap.total_ramgb},
        "contextTokens": context,
        "models": [
            {"name": m.name, "contextTokens": m.context_tokens or context, "tokensPerSecond": m.tokens_per_second}
            for m in cap.models
        ]
        # NB: a node without a model server lists the names it was given by hand, with the node's context
        or [{"name": model, "contextTokens": context, "tokensPerSecond": None} for model in cap.installed_models],
        "loaded": loaded_models(node),
        "executors": cap.executors,
        "sandbox": sandbox_summary(cap.sandbox),
        "labels": node.metadata.labels,
        "slots": {"used": len(in_slots), "total": node.spec.max_concurrent_tasks},
        "tasks": [_ref(task) for task in in_slots],
        "heartbeat": {
            "time": _iso(status.last_heartbeat_time),
            "age": age(status.last_heartbeat_time, now),
            "level": heartbeat_level(status.last_heartbeat_time, now, stale_after),
        },
        "system": " ".join(part for part in (status.os, status.arch, status.agent_version) if part),
    }


def loaded_models(node: FleetNode) -> dict[str, Any] | None:
    """What the node has in model memory now (policy warm places by it): the loaded models with their sizes, the
    memory they fill, and why the worker had to put its report right (condition ModelReportsValid). None: its server
    says nothing of loading."""
    cap = node.status.capability
    if all(m.loaded is None for m in cap.models):
        return None
    loaded = [m for m in cap.models if m.loaded]
    used = sum(m.size_gb or 0 for m in loaded)
    report = find_condition(node.status.conditions, reasons.MODEL_REPORTS_VALID)
    return {
        "models": [{"name": m.name, "sizeGB": m.size_gb} for m in loaded],
        "memory": {"used": round(used, 1), "total": cap.model_memory_gb} if cap.model_memory_gb else None,
        "warning": f"{report.reason}: {report.message}" if report is not None and report.status == "False" else None,
    }


def fleet_view(
    nodes: Iterable[FleetNode], tasks: Iterable[AgenticTask], now: datetime, stale_after: float
) -> dict[str, Any]:
    by_node: dict[str, list[AgenticTask]] = {}
    tasks = list(tasks)
    for task in tasks:
        if task.status.assigned_node:
            by_node.setdefault(task.status.assigned_node, []).append(task)
    cards = [node_card(n, by_node.get(n.name, []), now, stale_after) for n in sorted(nodes, key=lambda n: n.name)]
    return {"nodes": cards, "escalations": escalations(tasks)}


def escalations(tasks: Iterable[AgenticTask]) -> list[dict[str, Any]]:
    """Escalations per model, from the attempts of the tasks still there (the metric
    foreman_agent_escalations_total keeps the count of every one): each attempt that ended `Escalated`, to the
    model of the attempt after it (or the one the task waits for)."""
    counts: Counter[tuple[str, str]] = Counter()
    for task in tasks:
        history = task.status.attempt_history
        if not history:
            continue
        waiting = task.status.escalation.model if task.status.escalation is not None else None
        for attempt, after in zip(history, [*(a.model for a in history[1:]), waiting], strict=True):
            if attempt.outcome == reasons.ESCALATED:
                counts[(attempt.model or "default", after or "default")] += 1
    return [{"from": source, "to": target, "count": n} for (source, target), n in sorted(counts.items())]


# -- tasks -----------------------------------------------------------------------------------------------------------


def labels_match(labels: Mapping[str, str], selector: str) -> bool:
    """A label selector of equalities and existence tests, as kubectl's simplest form: `team=a,urgent,!done`."""
    for term in (part.strip() for part in selector.split(",")):
        if not term:
            continue
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass(frozen=True)
class TaskFilter:
    namespace: str = ""
    phase: str = ""
    kind: str = ""
    label: str = ""
    queue: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> TaskFilter:
        return cls(**{name: query.get(name, "").strip() for name in ("namespace", "phase", "kind", "label", "queue")})

    def admits(self, task: AgenticTask, queue: str = DEFAULT_QUEUE) -> bool:
        return (
            (not self.queue or queue == self.queue)
            and (not self.namespace or task.namespace == self.namespace)
            and (not self.phase or task.phase == self.phase)
            and (not self.kind or task.spec.kind == self.kind)
            and (not self.label or labels_match(task.metadata.labels, self.label))
        )


def why_pending(task: AgenticTask, line: Waiting | None = None) -> str:
    """What a Pending task waits for, in words: as the controller would say now (`line`, from `line_up`), else from
    its Blocked condition or a retry's backoff; "" for any other phase."""
    if task.phase != "Pending":
        return ""
    if line is not None:
        return f"{line.reason}: {line.message}"
    blocked = find_condition(task.status.conditions, "Blocked")
    if blocked is not None and blocked.status == "True":
        return f"{blocked.reason}: {blocked.message}" if blocked.message else blocked.reason
    if task.status.not_before is not None:
        return f"retry backoff until {_iso(task.status.not_before)}"
    return "waiting for a free slot on a fitting node"


def task_row(
    task: AgenticTask, now: datetime, *, in_graph: bool = False, queue: str = DEFAULT_QUEUE, line: Waiting | None = None
) -> dict[str, Any]:
    status = task.status
    return {
        **_ref(task),
        "kind": task.spec.kind,
        "executor": task.spec.executor,
        "node": status.assigned_node or "-",
        "verdict": status.verdict or "-",
        "reason": reason_of(task),
        "why": why_pending(task, line),
        "queue": queue,
        "position": str(line.position) if line is not None and line.position else NO_QUEUE,
        "attempts": status.attempts,
        "age": age(task.metadata.creation_timestamp, now),
        "labels": task.metadata.labels,
        "dependsOn": task.spec.depends_on,
        "inGraph": in_graph or bool(_linked(task)),
    }


def tasks_view(
    tasks: Mapping[Key, AgenticTask], wanted: TaskFilter, now: datetime, fleet: Cache | None = None
) -> dict[str, Any]:
    """The rows that pass the filter (by namespace, name), and the values each filter can take. `fleet`: what the
    controller would see (tasks, nodes, queues): each task's queue, and each Pending one's place in line and why."""
    everything = list(tasks.values())
    waiting = line_up(fleet, now) if fleet is not None else {}
    queues = {key: fleet.queue_of(task) if fleet is not None else DEFAULT_QUEUE for key, task in tasks.items()}
    shown = sorted((k for k, t in tasks.items() if wanted.admits(t, queues[k])), key=lambda k: k)
    around = _neighbours(tasks)
    return {
        "rows": [
            task_row(tasks[key], now, in_graph=bool(around.get(key)), queue=queues[key], line=waiting.get(key))
            for key in shown
        ],
        "total": len(everything),
        "choices": {
            "namespace": sorted({t.namespace or "" for t in everything}),
            "phase": ["Pending", "Scheduled", "Running", "Succeeded", "Failed"],
            "kind": sorted({t.spec.kind for t in everything}),
            "queue": sorted(set(queues.values())),
        },
    }


# -- graphs ----------------------------------------------------------------------------------------------------------


def _linked(task: AgenticTask) -> list[tuple[str, str]]:
    """The tasks a task's edges come from, each with the edge's kind: its upstreams (dependsOn) and the parent that
    created it (an agent's child: foreman.dev/parent)."""
    links = [(upstream, "dependsOn") for upstream in task.spec.depends_on]
    if subtasks.is_child(task) and (parent := task.metadata.labels.get(PARENT_LABEL)):
        links.append((parent, "parent"))
    return links


def _neighbours(tasks: Mapping[Key, AgenticTask]) -> dict[Key, set[Key]]:
    """Undirected dependsOn and parent-child adjacency within each namespace (upstreams that do not exist included)."""
    around: dict[Key, set[Key]] = {key: set() for key in tasks}
    for (namespace, name), task in tasks.items():
        for other, _ in _linked(task):
            around[(namespace, name)].add((namespace, other))
            around.setdefault((namespace, other), set()).add((namespace, name))
    return around


def component(tasks: Mapping[Key, AgenticTask], start: Key) -> set[Key]:
    """Every task connected to `start` through dependsOn or parent-child, either way."""
    around, seen, todo = _neighbours(tasks), {start}, [start]
    while todo:
        for other in around.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def graphs_index(tasks: Mapping[Key, AgenticTask]) -> list[dict[str, Any]]:
    """The graphs there are (tasks connected by dependsOn or parent-child, two or more), each named after its first
    root task."""
    around, seen, graphs = _neighbours(tasks), set[Key](), []
    for key in sorted(tasks):
        if key in seen or not around[key]:
            continue
        members = component(tasks, key)
        seen |= members
        present = [tasks[k] for k in members if k in tasks]
        roots = sorted(t.name for t in present if not _linked(t)) or sorted(t.name for t in present)
        tones: dict[str, int] = {}
        for task in present:
            tones[tone(task)] = tones.get(tone(task), 0) + 1
        graphs.append({"namespace": key[0], "name": roots[0], "size": len(members), "tones": tones})
    return graphs


def graph_view(tasks: Mapping[Key, AgenticTask], *, namespace: str, name: str = "", label: str = "") -> dict[str, Any]:
    """The DAG of one graph: the tasks connected to `name`, or the tasks whose labels match `label`; edges point from
    an upstream to the task that depends on it (kind dependsOn) and from a parent to the child its agent created (kind
    parent). An upstream that does not exist is a node of tone `missing`."""
    if name:
        members = component(tasks, (namespace, name)) if (namespace, name) in tasks else set()
        title = f"{namespace}/{name} and the tasks connected to it"
    else:
        members = {
            k
            for k, t in tasks.items()
            if (not namespace or k[0] == namespace) and labels_match(t.metadata.labels, label)
        }
        title = f"tasks labelled {label}" + (f" in {namespace}" if namespace else "")
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for key in sorted(members):
        task = tasks.get(key)
        if task is None:
            nodes.append(
                {"id": "/".join(key), "namespace": key[0], "name": key[1], "phase": "Missing", "tone": "missing"}
            )
            continue
        nodes.append({**_ref(task), "id": "/".join(key), "verdict": task.status.verdict, "reason": reason_of(task)})
        for other, kind in _linked(task):
            if (key[0], other) in members:
                edges.append({"from": f"{key[0]}/{other}", "to": "/".join(key), "kind": kind})
    return {"title": title, "nodes": nodes, "edges": edges, "order": _order(nodes, edges)}


def _order(nodes: list[dict[str, Any]], edges: list[dict[str, str]]) -> list[str]:
    """Upstream first (the page lists the tasks in this order beside the drawing); a cycle keeps name order."""
    sorter = graphlib.TopologicalSorter({node["id"]: [] for node in nodes})
    for edge in edges:
        sorter.add(edge["to"], edge["from"])
    try:
        return list(sorter.static_order())
    except graphlib.CycleError:
        return [node["id"] for node in nodes]


# -- one task --------------------------------------------------------------------------------------------------------


def timeline(task: AgenticTask) -> list[dict[str, Any]]:
    """What happened to the task, oldest first: creation, its conditions' transitions, claim, start, finish."""
    status = task.status
    moments: list[tuple[datetime, str, str, str]] = []
    marks = (
        (task.metadata.creation_timestamp, "Created", ""),
        (status.claimed_at, "Claimed", status.claimed_by or ""),
        (status.started_at, "Started", status.assigned_node or ""),
        (status.finished_at, "Finished", status.failure_reason or status.verdict or ""),
    )
    moments += [(when, what, detail, "") for when, what, detail in marks if when is not None]
    for condition in status.conditions:
        what = f"{condition.type}={condition.status}"
        moments.append((condition.last_transition_time, what, condition.reason, condition.message))
    moments.sort(key=lambda m: m[0])
    return [{"time": _iso(when), "what": what, "reason": why, "message": msg} for when, what, why, msg in moments]


def transcript_entries(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Transcript records (`foreman.api.models.transcript`) as entries the page draws: turns, tool calls, results."""
    entries: list[dict[str, Any]] = []
    for record in records:
        kind, turn = record.get("event"), record.get("turn")
        entry: dict[str, Any] = {"kind": kind if isinstance(kind, str) else "other", "turn": turn}
        if kind == "task":
            entry |= {"title": f"task for model {record.get('model') or 'default'}", "text": record.get("prompt", "")}
            entry["tools"] = record.get("tools", [])
        elif kind == "answer":
            entry |= {"title": "model", "text": record.get("content") or "", "reasoning": record.get("reasoning")}
            entry["calls"] = [
                {"name": c.get("name"), "arguments": c.get("arguments", "")} for c in record.get("toolCalls", [])
            ]
            entry["usage"] = record.get("usage")
        elif kind == "tool":
            entry |= {
                "title": f"{record.get('name')} {'ok' if record.get('ok') else 'failed'}",
                "ok": bool(record.get("ok")),
            }
            entry["text"] = record.get("result", "")
        elif kind == "retry":
            entry |= {"title": "retry", "text": str(record.get("reason", ""))}
        elif kind == "note":
            entry |= {"title": "note", "text": str(record.get("message", ""))}
        elif kind == "end":
            entry |= {"title": f"end: {record.get('verdict') or '-'} ({record.get('reason')})"}
            entry["text"] = record.get("summary", "")
        elif kind == "pullRequest":
            said = record.get("url") or f"failed: {record.get('error')}"
            entry |= {"title": "pull request" + (" (draft)" if record.get("draft") else ""), "text": str(said)}
        elif kind == "review":
            entry |= {"title": f"review: {record.get('verdict')}", "text": str(record.get("reasons", ""))}
        elif kind == "gate":
            ended = f"exit {record.get('exitStatus')}" if record.get("exitStatus") is not None else "no exit status"
            entry |= {
                "title": f"gate {record.get('name')}: {record.get('status')} ({ended})",
                "ok": record.get("status") == "passed",
            }
            entry["text"] = record.get("output", "")
        elif kind == "elided":
            entry |= {"title": f"{record.get('lines')} lines dropped", "text": "the transcript is kept under 1 MiB"}
        else:
            entry |= {"title": str(kind), "text": transcript.capped(str(record), 2000)}
        entries.append(entry)
    return entries


def gates_of(task: AgenticTask) -> dict[str, Any] | None:
    """Each verify gate's last run and the fix rounds, as `foreman describe` shows them; None: no gates ran."""
    result = task.status.result
    if result is None or not result.gates:
        return None
    rows = [
        {"name": g.name, "status": g.status, "exitStatus": g.exit_status, "seconds": g.seconds,
         "last": last_line(g.output_tail)[:200]}
        for g in result.gates
    ]  # fmt: skip
    return {"fixRounds": result.fix_rounds, "rows": rows}


def review_of(task: AgenticTask) -> dict[str, Any] | None:
    """The review of the agent's GO, or that one is under way (`foreman describe`'s Review line)."""
    result = task.status.result
    if result is not None and result.review is not None:
        return result.review.model_dump(mode="json", by_alias=True)
    if task.status.review is not None:
        return {"agentRef": task.status.review.agent_ref, "verdict": None, "reasons": "not answered yet"}
    return None


def pull_request_link(task: AgenticTask) -> dict[str, Any] | None:
    """The task's pull request for the page's link: only an http(s) URL becomes one (the forge said it)."""
    result = task.status.result
    pull = result.pull_request if result is not None else None
    if pull is None or not pull.url.startswith(("https://", "http://")):
        return None
    return {"url": pull.url, "number": pull.number, "draft": pull.draft}


def deliveries(task: AgenticTask) -> list[dict[str, str]]:
    """The deliveries of the task's result, as `foreman describe` lists them (sink, state, attempts, ...)."""
    header, *rows = delivery_rows(task)
    keys = [column.strip().lower().replace(" ", "_") for column in header]
    return [dict(zip(keys, (cell.strip() for cell in row), strict=True)) for row in rows]


def task_view(
    task: AgenticTask | None, transcript_text: str | None, *, actions: bool, line: Waiting | None = None
) -> dict[str, Any]:
    """The task page: spec, timeline, result envelope, usage and transcript; `found` False once it is gone."""
    if task is None:
        return {"found": False}
    status = task.status
    return {
        "found": True,
        **_ref(task),
        "kind": task.spec.kind,
        "node": status.assigned_node,
        "verdict": status.verdict,
        "reason": reason_of(task),
        "why": line.sentence() if line is not None else why_pending(task),
        "attempts": f"{status.attempts}/{task.spec.retries + 1}",
        "labels": task.metadata.labels,
        "dependsOn": task.spec.depends_on,
        "parent": next((name for name, kind in _linked(task) if kind == "parent"), None),
        "children": status.children,
        "spec": yaml.safe_dump(task.spec.to_wire(), sort_keys=False, width=100),
        "timeline": timeline(task),
        "result": status.result.model_dump(mode="json", by_alias=True) if status.result else None,
        "usage": status.usage.model_dump(mode="json", by_alias=True) if status.usage else None,
        "pullRequest": pull_request_link(task),
        "gates": gates_of(task),
        "attemptHistory": [attempt.model_dump(mode="json", by_alias=True) for attempt in status.attempt_history],
        "review": review_of(task),
        "deliveries": deliveries(task),
        "transcript": transcript_entries(transcript.parse(transcript_text or "")),
        "hasTranscript": transcript_text is not None,
        "canCancel": actions and task.phase not in TERMINAL_PHASES and not task.spec.cancel,
    }


# -- schedules -------------------------------------------------------------------------------------------------------


def schedule_card(schedule: TaskSchedule, now: datetime, *, actions: bool, fires: int = 3) -> dict[str, Any]:
    """A TaskSchedule with its next fires (in its zone and UTC) and its run history, newest first."""
    spec, status = schedule.spec, schedule.status
    upcoming: list[dict[str, str]] = []
    error = None
    try:
        cron = parse(spec.schedule, spec.time_zone)
        for fire in cron.upcoming(now, fires):
            upcoming.append(
                {"local": f"{fire.astimezone(cron.zone):%Y-%m-%d %H:%M %a %Z}", "utc": f"{fire:%Y-%m-%d %H:%M} UTC"}
            )
    except ScheduleError as refused:
        error = f"{refused.reason}: {refused}"
    history = [
        {
            "scheduled": _iso(run.scheduled_time),
            "task": run.task_name,
            "trigger": run.trigger,
            "phase": run.phase,
            "verdict": run.verdict,
            "message": run.message,
            "started": _iso(run.start_time),
            "finished": _iso(run.finish_time),
        }
        for run in status.run_history
    ]
    return {
        "namespace": schedule.namespace or "",
        "name": schedule.name,
        "schedule": spec.schedule,
        "timeZone": spec.time_zone,
        "suspend": spec.suspend,
        "concurrencyPolicy": spec.concurrency_policy,
        "active": status.active,
        "last": _iso(status.last_schedule_time),
        "next": upcoming,
        "error": error,
        "history": history,
        "canTrigger": actions,
    }


def schedules_view(schedules: Iterable[TaskSchedule], now: datetime, *, actions: bool) -> dict[str, Any]:
    ordered = sorted(schedules, key=lambda s: (s.namespace or "", s.name))
    return {"schedules": [schedule_card(schedule, now, actions=actions) for schedule in ordered]}
