"""Plain-text tables of tasks and nodes (work headless and in CI logs; no terminal control codes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from foreman.api.lifecycle import subtasks
from foreman.api.lifecycle.deliveries import firing
from foreman.api.models.base import Key, find_condition, key_of, utcnow
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.nodes import FleetNode, ModelOffer, NodeSandbox
from foreman.api.models.subtasks import DEPTH_LABEL, PARENT_LABEL
from foreman.api.models.tasks import AgenticTask
from foreman.cli.terminal import visible
from foreman.controller.expiry import TimeToLive, expires_at
from foreman.controller.waiting import Waiting


def table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns; a cell is one line, whatever a model wrote into it."""
    rows = [[visible(cell, one_line=True) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def gate_lines(result: ResultEnvelope | None) -> list[str]:
    """`foreman describe`: each verify gate's last run and the fix rounds it took (none: no gates ran)."""
    if result is None or not result.gates:
        return ["Gates:        -"]
    rounds = f"{result.fix_rounds} fix round{'s' if result.fix_rounds != 1 else ''}"
    rows = [("  NAME", "STATUS", "EXIT", "SECONDS", "OUTPUT (last line)")]
    for gate in result.gates:
        last = last_line(gate.output_tail)
        exit_status = "-" if gate.exit_status is None else str(gate.exit_status)
        rows.append((f"  {gate.name}", gate.status, exit_status, f"{gate.seconds:g}", last[:100]))
    return [f"Gates:        {rounds}", table(rows)]


def review_line(task: AgenticTask) -> str | None:
    """`foreman describe`: the review of the agent's GO (who, with which model, the answer and its reasons), or
    that it is under way; None: no review."""
    result = task.status.result
    if result is not None and (done := result.review) is not None:
        by = f" ({done.model})" if done.model else ""
        return f"Review:       {done.verdict} by Agent {done.agent_ref}{by}: {done.reasons}"
    if (stage := task.status.review) is not None:
        return f"Review:       by Agent {stage.agent_ref}, not answered yet"
    return None


def last_line(text: str) -> str:
    """The last line of a command's output that is not blank."""
    return next((line for line in reversed(text.splitlines()) if line.strip()), "")


def attempt_lines(task: AgenticTask) -> list[str]:
    """`foreman describe`: every attempt (claim) of the task, its outcome, usage and transcript."""
    if not task.status.attempt_history:
        return ["Attempts:     -"]
    rows = [("  #", "NODE", "MODEL", "STARTED", "FINISHED", "OUTCOME", "VERDICT", "TOKENS", "TURNS", "TRANSCRIPT")]
    for attempt in task.status.attempt_history:
        usage = attempt.usage
        tokens, turns = (str(usage.total_tokens), str(usage.turns)) if usage else ("-", "-")
        rows.append((
            f"  {attempt.number}", attempt.node or "-", attempt.model or "-", age(attempt.started_at),
            age(attempt.finished_at),
            attempt.outcome or ("Running" if attempt.finished_at is None else "-"), attempt.verdict or "-",
            tokens, turns, attempt.transcript_ref or "-",
        ))  # fmt: skip
    return ["Attempts:", table(rows)]


def family_lines(task: AgenticTask, children: Iterable[AgenticTask]) -> list[str]:
    """`foreman describe`: the parent that made this task (an agent's child), and the children this one made."""
    lines = []
    if subtasks.is_child(task):
        parent = task.metadata.labels.get(PARENT_LABEL, "-")
        lines.append(
            f"Parent:       {parent} (created by an agent, depth {task.metadata.labels.get(DEPTH_LABEL, '?')})"
        )
    mine = subtasks.children_of(task, children)
    if not mine:
        return [*lines, "Children:     -"]
    rows = [("  NAME", "AGENT", "PHASE", "VERDICT", "REASON")]
    rows += [(f"  {c.name}", c.spec.agent_ref or "-", c.phase, c.status.verdict or "-", c.status.failure_reason or "-")
             for c in mine]  # fmt: skip
    return [*lines, "Children:", table(rows)]


def age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "-"
    seconds = int(((now or utcnow()) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def reason_of(task: AgenticTask) -> str:
    """Why it failed, or why a Pending task waits (its Blocked condition), else "-"."""
    if task.status.failure_reason:
        return task.status.failure_reason
    blocked = find_condition(task.status.conditions, "Blocked")
    return blocked.reason if blocked is not None and blocked.status == "True" else "-"


def pull_request(task: AgenticTask) -> str | None:
    """The task's pull request (its URL, `draft` said), or why it has none when opening it failed."""
    result = task.status.result
    if result is None:
        return None
    if result.pull_request is not None:
        return result.pull_request.url + (" (draft)" if result.pull_request.draft else "")
    error = result.extra.get("pullRequestError")
    return f"failed: {error}" if result.failure_reason == "PullRequestFailed" and error else None


def clean_up(task: AgenticTask) -> str:
    """When the controller deletes the task, as far as the task itself says: its own ttlSecondsAfterFinished; the
    controller's defaults (--ttl-after-success / --ttl-after-failure) are flags the CLI cannot see."""
    ttl = task.spec.ttl_seconds_after_finished
    if ttl is None:
        return (
            "as the controller's --ttl-after-success / --ttl-after-failure say (unset: kept; the shipped controller "
            "Deployment: a day after success, a week after failure)"
        )
    when = expires_at(task, TimeToLive())
    after = f"{ttl} s after it finishes (spec.ttlSecondsAfterFinished)"
    return after if when is None else f"at {when.isoformat()}, {after}; later while an unfinished dependant needs it"


def delivery_rows(task: AgenticTask) -> list[tuple[str, ...]]:
    """Header and one row per delivery of the task's result: recorded ones as the notifier wrote them, due ones (its
    own notify list fires, nothing recorded yet) as `due`. An Agent's list is not looked up here."""
    recorded = {d.index: d for d in task.status.deliveries}
    rows: list[tuple[str, ...]] = [("  SINK", "STATE", "ATTEMPTS", "DELIVERED", "NEXT TRY", "ID", "LAST ERROR")]
    for index in sorted({i for i, _ in firing(task, None)} | recorded.keys()):
        d = recorded.get(index)
        if d is None:
            rows.append((f"  {index}:{task.spec.notify[index].sink_type}", "due", "0", "-", "now", "-", "-"))
            continue
        delivered = d.delivered_at.isoformat() if d.delivered_at else "-"
        next_try = d.next_attempt_at.isoformat() if d.state == "Pending" and d.next_attempt_at else "-"
        rows.append((f"  {index}:{d.sink}", d.state, str(d.attempts), delivered, next_try, d.id, d.last_error or "-"))
    return rows


def task_rows(
    tasks: Iterable[AgenticTask],
    *,
    namespaces: bool = False,
    wide: bool = False,
    waiting: Mapping[Key, Waiting] | None = None,
) -> list[tuple[str, ...]]:
    """Header and one row per task (by namespace and name); `namespaces` adds NAMESPACE first (for -A), `wide` adds
    what placement and ordering look at (-o wide), as kubectl does. `waiting`: each Pending task's queue, position
    and why it waits (`foreman.controller.waiting`): REASON then says why, QUEUE and POSITION where it stands."""
    header = ("NAME", "PHASE", "KIND", "NODE", "VERDICT", "REASON", "QUEUE", "POSITION", "ATTEMPTS", "AGE")
    more = ("PRIORITY", "ACCELERATOR", "DEPENDS-ON", "EXECUTOR") if wide else ()
    rows: list[tuple[str, ...]] = [(("NAMESPACE",) if namespaces else ()) + header + more]
    for task in sorted(tasks, key=lambda t: (t.namespace or "", t.name)):
        status = task.status
        line = (waiting or {}).get(key_of(task))
        reason = line.reason if line is not None else reason_of(task)
        queue, position = (line.queue, str(line.position or "-")) if line is not None else ("-", "-")
        row: tuple[str, ...] = (
            task.name, status.phase, task.spec.kind, status.assigned_node or "-", status.verdict or "-",
            reason, queue, position, str(status.attempts), age(task.metadata.creation_timestamp),
        )  # fmt: skip
        if wide:
            spec = task.spec
            depends = ",".join(spec.depends_on) or "-"
            row += (str(spec.priority), spec.required_capability.accelerator, depends, spec.executor)
        rows.append(((task.namespace or "",) if namespaces else ()) + row)
    return rows


def tasks_table(
    tasks: Iterable[AgenticTask],
    *,
    namespaces: bool = False,
    wide: bool = False,
    waiting: Mapping[Key, Waiting] | None = None,
) -> str:
    return table(task_rows(tasks, namespaces=namespaces, wide=wide, waiting=waiting))


def nodes_table(nodes: Iterable[FleetNode], *, wide: bool = False) -> str:
    """FleetNodes, one a row; MODELS lists what each serves (context, speed), the first two unless `wide`."""
    rows = [
        ("NAME", "PHASE", "ACCELERATOR", "RAM", "CONTEXT", "RUNNING", "EXECUTORS", "SANDBOX", "MODELS", "HEARTBEAT")
    ]
    for node in sorted(nodes, key=lambda n: n.name):
        cap = node.status.capability
        # NB: a count only when one is known: `--accelerator cuda` without a count read "cuda x0"
        count = f" x{cap.accelerator_count}" if cap.accelerator_count else ""
        models = [model_summary(model) for model in cap.models] or list(cap.installed_models)
        shown = models if wide or len(models) <= 2 else [*models[:2], f"+{len(models) - 2} more"]
        rows.append((node.name, node.status.phase or "-", f"{cap.accelerator}{count}",
                     f"{cap.available_ramgb:g}/{cap.total_ramgb:g}", str(cap.max_context_tokens),
                     f"{node.status.running_tasks}/{node.spec.max_concurrent_tasks}",
                     ",".join(cap.executors) or "-", sandbox_summary(cap.sandbox), ", ".join(shown) or "-",
                     age(node.status.last_heartbeat_time)))  # fmt: skip
    return table(rows)


def sandbox_summary(sandbox: NodeSandbox | None) -> str:
    """How a node confines its agents' commands, in a word or two: `bubblewrap`, `bubblewrap+network`, `UNCONFINED`
    (said loudly), `no commands` (no sandbox works there), `-` (not said)."""
    if sandbox is None:
        return "-"
    if sandbox.kind == "none":
        return "UNCONFINED"
    if sandbox.kind == "unavailable":
        return "no commands"
    return sandbox.kind + ("+network" if sandbox.network == "host" else "")


def model_summary(model: ModelOffer) -> str:
    """`name (32k ctx, 41 tok/s)`: what is known of a served model."""
    known = []
    if model.context_tokens:
        known.append(
            f"{model.context_tokens // 1024}k ctx" if model.context_tokens >= 1024 else f"{model.context_tokens} ctx"
        )
    if model.tokens_per_second is not None:
        known.append(f"{model.tokens_per_second:.0f} tok/s")
    return f"{model.name} ({', '.join(known)})" if known else model.name
