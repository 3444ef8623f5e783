"""What a delivery says about a finished task, as pure functions: the result envelope's summary and a way back to it.

Never a credential (nothing here reads a Secret), never the transcript unless the entry asks (`include: transcript`):
the summary, changed files and PR link are the model's words and stay short.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Any
from urllib.parse import quote

from foreman.api.models.base import wire_time
from foreman.api.models.schedules import SCHEDULE_LABEL
from foreman.api.models.tasks import AgenticTask

EVENT_TYPE = "dev.foreman.task.finished"
SUMMARY_LENGTH = 4000
MAX_FILES = 200
CHAT_SUMMARY_LENGTH = 1500


def describe_command(task: AgenticTask) -> str:
    return shlex.join(["foreman", "describe", task.name, "-n", task.namespace or "default"])


def dashboard_link(base: str, task: AgenticTask) -> str:
    namespace = quote(task.namespace or "default", safe="")
    return f"{base.rstrip('/')}/#/task/{namespace}/{quote(task.name, safe='')}"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def payload(task: AgenticTask, *, dashboard: str | None = None, transcript: str | None = None) -> dict[str, Any]:
    """The JSON body of every sink (the CloudEvent's data, the webhook's body)."""
    status = task.status
    result = status.result
    extra = result.extra if result is not None else {}
    files = extra.get("changedFiles")
    body: dict[str, Any] = {
        "type": EVENT_TYPE,
        "task": {
            "name": task.name,
            "namespace": task.namespace,
            "uid": task.metadata.uid,
            "kind": task.spec.kind,
            "schedule": task.metadata.labels.get(SCHEDULE_LABEL),
        },
        "phase": status.phase,
        "verdict": status.verdict,
        "failureReason": status.failure_reason,
        "summary": (result.summary if result is not None else "")[:SUMMARY_LENGTH],
        "changedFiles": [str(f) for f in files[:MAX_FILES]] if isinstance(files, list) else [],
        "pullRequest": result.pull_request.url if result is not None and result.pull_request is not None else None,
        "attempt": status.attempts,
        "usage": status.usage.to_wire() if status.usage is not None else None,
        "durations": {
            "queuedSeconds": _seconds(task.metadata.creation_timestamp, status.started_at),
            "runSeconds": _seconds(status.started_at, status.finished_at),
            "totalSeconds": _seconds(task.metadata.creation_timestamp, status.finished_at),
        },
        "finishedAt": wire_time(status.finished_at) if status.finished_at is not None else None,
        "links": {
            "describe": describe_command(task),
            "dashboard": dashboard_link(dashboard, task) if dashboard else None,
        },
    }
    if transcript is not None:
        body["transcript"] = transcript
    return body


def chat_message(body: dict[str, Any]) -> tuple[str, str]:
    """A title and a short text for a chat (Apprise), from the payload."""
    task = body["task"]
    verdict = f" ({body['verdict']})" if body.get("verdict") else ""
    title = f"{task['namespace']}/{task['name']} {body['phase']}{verdict}"
    lines = [body["summary"][:CHAT_SUMMARY_LENGTH] or body.get("failureReason") or ""]
    if body["changedFiles"]:
        lines.append(f"Changed: {', '.join(body['changedFiles'][:10])}")
    if body["pullRequest"]:
        lines.append(f"Pull request: {body['pullRequest']}")
    lines.append(body["links"]["dashboard"] or body["links"]["describe"])
    return title, "\n".join(line for line in lines if line)
