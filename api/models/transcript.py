"""The agent's transcript: one JSON line per event (the task, each answer, each tool result, retries, the end),
kept under a size limit by dropping the middle (pure), and rendered for people (`foreman logs`).

Each attempt of a task keeps its own, in a ConfigMap (`<task>-transcript` for the first, `<task>-transcript-N` for
attempt N; key `transcript.jsonl`), which the apiserver caps at 1 MiB whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from foreman.api.models.tasks import NODE_LABEL, AgenticTask

KEY = "transcript.jsonl"
LIMIT = 900_000
"""Bytes of transcript kept: a ConfigMap holds 1 MiB in all, and its metadata needs some of it."""
RESULT_CAP = 4_000
"""Characters of a tool result (or of reasoning) kept in the transcript: the model saw more, the reader needs less."""
HEAD = 8
"""Lines kept at the start when the middle is dropped (the task and the first turns say what it was about)."""


def configmap_name(task_name: str, attempt: int = 1) -> str:
    """The ConfigMap of one attempt's transcript (the first's keeps the name it had before attempts had their own)."""
    suffix = "" if attempt <= 1 else f"-{attempt}"
    return f"{task_name[: 253 - len('-transcript') - len(suffix)]}-transcript{suffix}"


def configmap_names(task: AgenticTask) -> list[str]:
    """Every attempt's transcript ConfigMap a task may have (none when it never published one)."""
    if not task.status.transcript_ref:
        return []
    history = task.status.attempt_history
    last = history[-1].number if history else 1
    return [configmap_name(task.name, number) for number in range(1, last + 1)]


def configmap(task: AgenticTask, text: str, attempt: int = 1) -> dict[str, Any]:
    """The ConfigMap that holds one attempt's transcript, owned by the task (a cluster's garbage collector deletes
    it with the task), for a server-side apply."""
    owner = {"apiVersion": task.api_version, "kind": task.kind, "name": task.name, "uid": task.metadata.uid}
    name = configmap_name(task.name, attempt)
    meta: dict[str, Any] = {"name": name, "namespace": task.namespace, "ownerReferences": [owner]}
    if task.status.assigned_node:  # NB: the admission policy lets a worker write only its own node's transcripts
        meta["labels"] = {NODE_LABEL: task.status.assigned_node}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {KEY: text}}


def owned_by(body: dict[str, Any], task: AgenticTask) -> bool:
    """Whether a ConfigMap is this task's transcript (its owner is the task, by uid). NB: the name comes from the
    task's status, which a worker writes: only a ConfigMap the task owns may be deleted with it."""
    owners = body.get("metadata", {}).get("ownerReferences") or []
    return task.metadata.uid is not None and any(owner.get("uid") == task.metadata.uid for owner in owners)


def capped(text: str, limit: int = RESULT_CAP) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more characters]"


@dataclass
class Transcript:
    lines: list[str] = field(default_factory=list)
    dropped: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))

    def text(self) -> str:
        """The JSON lines, the middle replaced by one marker line when the whole would pass LIMIT."""
        lines = self.lines
        total = sum(len(line.encode()) + 1 for line in lines)
        if total <= LIMIT:
            return "\n".join(lines) + "\n" if lines else ""
        head = lines[:HEAD]
        budget = LIMIT - sum(len(line.encode()) + 1 for line in head) - 200
        tail: list[str] = []
        for line in reversed(lines[HEAD:]):
            size = len(line.encode()) + 1
            if size > budget:
                break
            tail.insert(0, line)
            budget -= size
        dropped = len(lines) - len(head) - len(tail)
        marker = json.dumps({"event": "elided", "lines": dropped, "why": "transcript kept under 1 MiB"})
        return "\n".join([*head, marker, *tail]) + "\n"


def parse(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"event": "unreadable", "text": line[:200]})
    return records


def render(records: Iterable[dict[str, Any]], *, width: int = 400) -> list[str]:
    """Readable lines for a person: turn numbers, tool calls with their arguments, results shortened."""
    out: list[str] = []
    for record in records:
        kind = record.get("event")
        turn = record.get("turn")
        prefix = f"[{turn:>3}]" if isinstance(turn, int) else "     "
        if kind == "task":
            tools = ",".join(record.get("tools", []))
            out.append(f"{prefix} task   model={record.get('model') or 'default'} tools={tools}")
            out.append(f"{prefix} prompt {_short(record.get('prompt', ''), width)}")
        elif kind == "answer":
            if record.get("reasoning"):
                out.append(f"{prefix} think  {_short(record['reasoning'], width)}")
            if record.get("content"):
                out.append(f"{prefix} says   {_short(record['content'], width)}")
            for call in record.get("toolCalls", []):
                out.append(f"{prefix} call   {call.get('name')}({_short(call.get('arguments', ''), width)})")
            usage = record.get("usage")
            if usage:
                out.append(f"{prefix}        tokens {usage.get('prompt', 0)} in, {usage.get('completion', 0)} out")
        elif kind == "tool":
            status = "ok " if record.get("ok") else "ERR"
            out.append(f"{prefix} {status}    {record.get('name')}: {_short(record.get('result', ''), width)}")
        elif kind == "gate":
            exit_status = record.get("exitStatus")
            ended = f"exit {exit_status}" if exit_status is not None else "no exit status"
            out.append(f"{prefix} gate   {record.get('name')}: {record.get('status')} ({ended}, "
                       f"{record.get('seconds', 0):g} s) {_short(record.get('output', ''), width)}")  # fmt: skip
        elif kind == "retry":
            out.append(f"{prefix} retry  {record.get('reason')}")
        elif kind == "note":
            out.append(f"{prefix} note   {_short(record.get('message', ''), width)}")
        elif kind == "end":
            summary = _short(record.get("summary", ""), width)
            out.append(f"{prefix} end    {record.get('verdict') or '-'} ({record.get('reason')}): {summary}")
        elif kind == "pullRequest":
            said = record.get("url") or f"failed: {_short(record.get('error', ''), width)}"
            out.append(f"{prefix} pr     {said}" + (" (draft)" if record.get("draft") else ""))
        elif kind == "review":
            out.append(f"{prefix} review {record.get('verdict')}: {_short(record.get('reasons', ''), width)}")
        elif kind == "elided":
            out.append(f"      … {record.get('lines')} lines dropped to keep the transcript under 1 MiB …")
        else:
            out.append(f"{prefix} {json.dumps(record)[:width]}")
    return out


def _short(text: str, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
