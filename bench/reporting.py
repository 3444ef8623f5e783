"""The report every benchmark section writes into: figures, targets met or not, printed as they come."""

from __future__ import annotations

import sys
from typing import Any

report: dict[str, Any] = {}


def say(line: str) -> None:
    sys.stderr.write(line + "\n")


def target(name: str, value: float, limit: float, *, below: bool = True, unit: str = "") -> None:
    met = value <= limit if below else value >= limit
    report.setdefault("targets", {})[name] = {"value": round(value, 3), "target": limit, "met": met}
    sign = "<=" if below else ">="
    say(f"  {name}: {value:.3g}{unit} (target {sign} {limit:g}{unit}) {'met' if met else 'NOT MET'}")
