"""The foreman.v1 result envelope: what an executor returns and what lands in AgenticTask status.result."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from foreman.api.models.base import Model

SCHEMA_VERSION: Literal["foreman.v1"] = "foreman.v1"

TaskKind = Literal["issue-fix", "verify", "review", "freeform"]
Verdict = Literal["GO", "NO-GO", "INCOMPLETE", "GATE-PASS", "GATE-FAIL", "GATE-ERROR", "SKIPPED"]
VERDICTS: tuple[Verdict, ...] = ("GO", "NO-GO", "INCOMPLETE", "GATE-PASS", "GATE-FAIL", "GATE-ERROR", "SKIPPED")
PASSING_VERDICTS: frozenset[Verdict] = frozenset({"GO", "GATE-PASS", "SKIPPED"})
"""Verdicts that count as a pass: dependants run after them, and `foreman submit --wait` exits 0. SKIPPED passes:
the task decided there was nothing to do, which is no reason to stop the work after it."""


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
