"""Public import path of the result envelope (README, examples/): the names of `foreman.api.models.envelope`,
re-exported; Foreman's own code imports that module instead."""

from foreman.api.models.envelope import (
    EXTRA_BYTES,
    EXTRA_DEPTH,
    MAX_ATTEMPTS_KEPT,
    PASSING_VERDICTS,
    SCHEMA_VERSION,
    VERDICTS,
    Attempt,
    ChildRecord,
    ResultEnvelope,
    TaskKind,
    Usage,
    Verdict,
    bounded,
    depth,
)

__all__ = [
    "EXTRA_BYTES",
    "EXTRA_DEPTH",
    "MAX_ATTEMPTS_KEPT",
    "PASSING_VERDICTS",
    "SCHEMA_VERSION",
    "VERDICTS",
    "Attempt",
    "ChildRecord",
    "ResultEnvelope",
    "TaskKind",
    "Usage",
    "Verdict",
    "bounded",
    "depth",
]
