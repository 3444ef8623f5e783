"""The report every benchmark section writes into: figures, targets met or not, printed as they come."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

report: dict[str, Any] = {}


def say(line: str) -> None:
    sys.stderr.write(line + "\n")


def target(name: str, value: float, limit: float, *, below: bool = True, unit: str = "") -> None:
    met = value <= limit if below else value >= limit
    report.setdefault("targets", {})[name] = {"value": round(value, 3), "target": limit, "below": below, "met": met}
    sign = "<=" if below else ">="
    say(f"  {name}: {value:.3g}{unit} (target {sign} {limit:g}{unit}) {'met' if met else 'NOT MET'}")


@contextmanager
def per_release(release: str) -> Iterator[None]:
    """What the sections inside write (figures and targets) goes to report["kubernetes"][release]: the sections that
    run against an apiserver run once per release, and write the same keys each time."""
    outside = dict(report)
    report.clear()
    try:
        yield
    finally:
        figures = dict(report)
        report.clear()
        report.update(outside)
        report.setdefault("kubernetes", {})[release] = figures


def all_targets() -> list[dict[str, Any]]:
    """Every target of the run: the release-independent ones and each release's."""
    releases = report.get("kubernetes", {}).values()
    return [*report.get("targets", {}).values(), *(t for r in releases for t in r.get("targets", {}).values())]


def side_by_side() -> None:
    """The figures measured on more than one release, one column each: ratios within one run of one machine, so
    comparable across the columns (absolute times drift between runs on shared machines; the columns ran minutes
    apart)."""
    releases = report.get("kubernetes", {})
    if len(releases) < 2:
        return
    rows: dict[str, dict[str, str]] = {}
    for release, figures in releases.items():
        for name, row in figures.get("targets", {}).items():
            label = f"{name} ({'<=' if row['below'] else '>='} {row['target']:g})"
            rows.setdefault(label, {})[release] = f"{row['value']:.3g}" + ("" if row["met"] else " NOT MET")
        throughput, raw, floor = (figures.get(k, {}) for k in ("throughput", "raw_status_patches_per_s", "floor"))
        if throughput:
            rows.setdefault("tasks/s, 2,000 tasks over 20 nodes", {})[release] = f"{throughput['tasks_per_s']:.0f}"
            rows.setdefault("raw status patches/s, median of the rounds", {})[release] = f"{raw['median']:.0f}"
        if floor:
            rows.setdefault("floor: create / status patch, ms", {})[release] = (
                f"{floor['create']:.2f} / {floor['status_patch']:.2f}"
            )
    width = max(len(name) for name in rows)
    say("\n" + "side by side".ljust(width) + "".join(f"{'v' + r:>16}" for r in releases))
    for name, values in rows.items():
        say(name.ljust(width) + "".join(f"{values.get(r, '-'):>16}" for r in releases))
