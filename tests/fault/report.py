"""Figures the fault scenarios record; printed as one table at the end of the run (`make soak`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

SOAK = os.environ.get("FOREMAN_SOAK") == "1"


def size(ci: int, soak: int) -> int:
    """Scenario size: small enough for CI's 10-minute budget, full size under `make soak`."""
    return soak if SOAK else ci


@dataclass(frozen=True)
class Row:
    scenario: str
    tasks: int
    faults: int
    lost: int
    double_executions: int
    settle_seconds: float  # longest a task stayed non-terminal after the last fault ended


ROWS: list[Row] = []


def render() -> str:
    header = ("scenario", "tasks", "faults", "lost", "double executions", "max s non-terminal after fault")
    rows = [header] + [
        (r.scenario, str(r.tasks), str(r.faults), str(r.lost), str(r.double_executions), f"{r.settle_seconds:.1f}")
        for r in ROWS
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
