"""The foreman.v1 result envelope: what an executor returns and what lands in AgenticTask status.result."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from foreman.api.models.base import Model, ObjectName, Rule
from foreman.api.models.gates import GateResult
from foreman.api.models.pullrequests import PullRequestRecord

SCHEMA_VERSION: Literal["foreman.v1"] = "foreman.v1"

TaskKind = Literal["issue-fix", "verify", "review", "freeform"]
Verdict = Literal["GO", "NO-GO", "INCOMPLETE", "GATE-PASS", "GATE-FAIL", "GATE-ERROR", "SKIPPED"]
VERDICTS: tuple[Verdict, ...] = ("GO", "NO-GO", "INCOMPLETE", "GATE-PASS", "GATE-FAIL", "GATE-ERROR", "SKIPPED")
PASSING_VERDICTS: frozenset[Verdict] = frozenset({"GO", "GATE-PASS", "SKIPPED"})
"""Verdicts that count as a pass: dependants run after them, and `foreman submit --wait` exits 0. SKIPPED passes:
the task decided there was nothing to do, which is no reason to stop the work after it."""


MAX_ATTEMPTS_KEPT = 128
"""Attempts a task records at most (the latest kept): retries are at most 100, and lost nodes are rare."""


class Usage(Model):
    """What an agent task consumed, as its inference server reported it."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    turns: int = Field(default=0, ge=0)
    """Model calls that produced an answer."""
    tool_calls: int = Field(default=0, ge=0)
    model: str | None = None
    estimated: bool = False
    """Some turns had no usage from the server, so their tokens were estimated from the text (~4 characters each)."""
    cached_prompt_tokens: int | None = Field(default=None, ge=0)
    """Of prompt_tokens, those the server reused from its prompt cache rather than processed again, where it says
    (llama-server, OpenAI-style servers)."""


class Attempt(Model):
    """One attempt of a task: one claim by a worker, to its end (a result, a retry, a timeout, a cancel, a lost
    node). Each keeps its own transcript."""

    number: int = Field(ge=1)
    node: str | None = None
    model: str | None = Field(default=None, max_length=253)
    """The model it ran with (agent executor; none: the server's default, or not known)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    """None while it runs."""
    outcome: str | None = Field(default=None, max_length=253)
    """`Completed` (an envelope came back), else the reason it ended: Timeout, Cancelled, ExecutorError, ..."""
    verdict: Verdict | None = None
    usage: Usage | None = None
    """What it consumed, as far as its worker saw (a timed-out or cancelled attempt's too)."""
    transcript_ref: str | None = None
    """The ConfigMap holding this attempt's transcript (`foreman logs TASK --attempt N`)."""


class ChildRecord(Model):
    """One child task (made by the agent's `submit_task`), as the parent's envelope lists it when the parent ends."""

    name: str = Field(max_length=253)
    phase: str | None = Field(default=None, max_length=32)
    verdict: Verdict | None = None


MAX_REASONS = 8192
ReviewVerdict = Literal["GO", "NO-GO"]


class ReviewRecord(Model):
    """The envelope's `review`: who reviewed, with which model, and their answer (the task's verdict)."""

    agent_ref: ObjectName
    model: str | None = Field(default=None, max_length=253)
    verdict: ReviewVerdict
    reasons: str = Field(default="", max_length=MAX_REASONS)


class ResultEnvelope(Model):
    """Versioned result of one task run; `schemaVersion` is validated, so a foreign shape never slips through."""

    schema_version: Literal["foreman.v1"] = SCHEMA_VERSION
    kind: TaskKind
    verdict: Verdict
    summary: str = Field(default="", max_length=65536)
    extra: dict[str, Any] = Field(default_factory=dict)
    """Executor-specific details (for example stdout/stderr tails); free-form."""
    elapsed_sec: float = Field(default=0.0, ge=0)
    failure_reason: str | None = None
    gates: list[GateResult] = Field(default_factory=list, max_length=32)
    """Each verify gate's last run, in order (agent executor): name, status, exit status, the tail of its output."""
    fix_rounds: int = Field(default=0, ge=0)
    """Times a failing gate's output went back to the model."""
    attempts: list[Attempt] = Field(default_factory=list, max_length=MAX_ATTEMPTS_KEPT)
    """Every attempt of the task, the last one this result's (written by the worker with the result)."""

    rules: ClassVar[tuple[Rule, ...]] = (
        # NB: the model's word is not a pass where gates ran: a passing verdict needs every gate listed passed
        Rule(
            cel=f"!(self.verdict in {sorted(PASSING_VERDICTS)}) || !has(self.gates)"
            " || self.gates.all(g, g.status == 'passed')",
            message="gates: a passing verdict needs every gate passed",
            holds=lambda envelope: envelope.verdict not in PASSING_VERDICTS or all(g.passed for g in envelope.gates),
        ),
    )

    pull_request: PullRequestRecord | None = None
    """The pull request the task opened or updated on the worker's forge (agent executor)."""
    review: ReviewRecord | None = None
    """The review of the agent's GO (`spec.review`): the reviewer's Agent, model, verdict (the task's) and reasons."""
    children: list[ChildRecord] = Field(default_factory=list, max_length=1000)
    """The tasks this one created (`submit_task`), each as it stood when this one ended: a parent's verdict is its
    model's own, and here is what its children came to."""


EXTRA_BYTES = 256 * 1024
"""What an envelope's `extra` may take in all, as JSON (a task is stored whole in etcd, which refuses 1.5 MB)."""
EXTRA_DEPTH = 32


def bounded(envelope: ResultEnvelope) -> ResultEnvelope:
    """The envelope with `extra` cut to EXTRA_BYTES and EXTRA_DEPTH before it is written: a model's `extra` is
    hostile input, and one the apiserver refuses (too large) or a daemon cannot decode (too deep) must not cost the
    result. Top-level keys that do not fit are dropped whole, in order, and named in `extra.dropped`."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    size = 2
    for key, value in envelope.extra.items():
        encoded = len(json.dumps({key: value}, default=str)) if depth(value) < EXTRA_DEPTH else None
        if encoded is None or size + encoded > EXTRA_BYTES - 4096:
            dropped.append(str(key)[:200])
            continue
        kept[key] = value
        size += encoded
    if not dropped:
        return envelope
    kept["dropped"] = f"too large or too deep to store: {', '.join(dropped)}"[:2048]
    return envelope.model_copy(update={"extra": kept})


def depth(value: Any) -> int:
    """Nesting levels of a JSON value (0 for a scalar), counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, level = stack.pop()
        if isinstance(current, dict | list):
            level += 1
            deepest = max(deepest, level)
            if level > EXTRA_DEPTH:
                return level  # deep enough to refuse: no need to walk further
            stack.extend((item, level) for item in (current.values() if isinstance(current, dict) else current))
    return deepest
