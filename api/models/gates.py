"""Verify gates: the checks an Agent (or a task) lists, which the worker runs itself after the model's GO, and what
each one's run came to (recorded in the result envelope).

The model never runs, names or reports a gate: a GO with gates is built only from the worker's passed results
(`ResultEnvelope` refuses any other), so a gate cannot be skipped, reordered or faked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from foreman.api.models.base import Model

DEFAULT_MAX_FIX_ROUNDS = 2
MAX_FIX_ROUNDS = 20
GATE_TIMEOUT_MAX = 3600
OUTPUT_TAIL = 4_000
"""Characters of a gate's output kept (the end, where errors are): in the envelope, and for the model's fix round."""

Word = Annotated[str, Field(max_length=4096)]
GateName = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")]


class Gate(Model):
    """One check: an argv (no shell) run in the workspace through the same sandbox, limits and allowlist as the
    `run` tool, with its own timeout."""

    name: GateName
    argv: list[Word] = Field(min_length=1, max_length=256)
    """The command, word by word; it must start with one of the node's allowed commands (checked at placement)."""
    timeout_seconds: int = Field(default=600, ge=1, le=GATE_TIMEOUT_MAX)
    """Killed after this long: a failed gate (exit status none, its output's tail kept)."""


Gates = Annotated[list[Gate], Field(max_length=32)]

GateStatus = Literal["passed", "failed", "timedOut", "notRun"]


class GateResult(Model):
    """What one gate's last run came to."""

    name: GateName
    status: GateStatus
    """`notRun`: an earlier gate failed, so this one was not run in that round."""
    exit_status: int | None = None
    """The command's exit status; none when it was killed at its timeout or not run."""
    output_tail: str = Field(default="", max_length=OUTPUT_TAIL + 200)
    """The end of its output (stdout and stderr together)."""
    output_bytes: int = Field(default=0, ge=0)
    """Bytes it printed in all (only the tail is kept)."""
    seconds: float = Field(default=0.0, ge=0)
    limit: str | None = Field(default=None, max_length=1024)
    """A limit that ended or hindered it, in words ("killed: memory limit 2 GiB")."""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def allowed(argv: Sequence[str], prefixes: Sequence[Sequence[str]]) -> bool:
    """Whether argv starts with one of a node's allowed prefixes, word for word: the `run` tool's rule, and
    placement's for gates."""
    return any(len(argv) >= len(prefix) > 0 and list(argv[: len(prefix)]) == list(prefix) for prefix in prefixes)
