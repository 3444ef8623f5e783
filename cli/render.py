"""Plain-text tables of tasks and nodes (work headless and in CI logs; no terminal control codes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from foreman.api.base import utcnow
from foreman.api.resources import AgenticTask, FleetNode


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "-"
    seconds = int(((now or utcnow()) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def tasks_table(tasks: Iterable[AgenticTask]) -> str:
    rows = [("NAME", "PHASE", "KIND", "NODE", "VERDICT", "REASON", "ATTEMPTS", "AGE")]
    for task in sorted(tasks, key=lambda t: t.name):
        status = task.status
        node, verdict, reason = status.assigned_node or "-", status.verdict or "-", status.failure_reason or "-"
        created = age(task.metadata.creation_timestamp)
        rows.append((task.name, status.phase, task.spec.kind, node, verdict, reason, str(status.attempts), created))
    return table(rows)


def nodes_table(nodes: Iterable[FleetNode]) -> str:
    rows = [("NAME", "PHASE", "ACCELERATOR", "RAM", "CONTEXT", "RUNNING", "EXECUTORS", "HEARTBEAT")]
    for node in sorted(nodes, key=lambda n: n.name):
        cap = node.status.capability
        # NB: a count only when one is known: `--accelerator cuda` without a count read "cuda x0"
        count = f" x{cap.accelerator_count}" if cap.accelerator_count else ""
        rows.append((node.name, node.status.phase or "-", f"{cap.accelerator}{count}",
                     f"{cap.available_ramgb:g}/{cap.total_ramgb:g}", str(cap.max_context_tokens),
                     f"{node.status.running_tasks}/{node.spec.max_concurrent_tasks}",
                     ",".join(cap.executors) or "-", age(node.status.last_heartbeat_time)))  # fmt: skip
    return table(rows)
