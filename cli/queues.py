"""`foreman queue list`: how the fleet is shared between TaskQueues, counted live."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import typer

from foreman.api.models.base import utcnow
from foreman.api.models.queues import DEFAULT_QUEUE
from foreman.api.tooling.sdk import ForemanClient
from foreman.cli.errors import user_errors
from foreman.cli.lineup import fleet_view
from foreman.cli.render import table
from foreman.cli.tasks import CLI_RETRY, Kubeconfig
from foreman.cli.terminal import emit
from foreman.controller.cache import Cache
from foreman.controller.queues import QueueRule, queue_exists, shares
from foreman.controller.waiting import line_up

app = typer.Typer(help="TaskQueues: how teams share the fleet (weights, caps).", no_args_is_help=True)


def queues_table(fleet: Cache, now: datetime) -> str:
    """Every TaskQueue, and the default queue: weight, cap, tasks running (Scheduled or Running), tasks pending in its
    line (placeable: dependencies met), and its actual share of the running tasks against its weight's share."""
    loads = fleet.queue_loads()
    pending = Counter(line.queue for line in line_up(fleet, now).values() if line.position is not None)
    rules = {DEFAULT_QUEUE: QueueRule(DEFAULT_QUEUE), **fleet.queue_rules}
    for named in [*loads, *pending]:
        rules.setdefault(named, QueueRule(named))  # named by tasks, but no TaskQueue exists: shown to say so
    total_weight = sum(rule.weight for rule in rules.values())
    actual = shares(loads)
    rows = [("NAME", "WEIGHT", "MAX", "RUNNING", "PENDING", "SHARE", "WEIGHT-SHARE")]
    for name, rule in sorted(rules.items()):
        caps = [str(rule.max_running)] if rule.max_running is not None else []
        caps += [f"{accelerator}:{limit}" for accelerator, limit in sorted(rule.max_running_per_accelerator.items())]
        shown = name if queue_exists(name, fleet.queue_rules) else f"{name} (missing)"
        rows.append((shown, f"{rule.weight:g}", ",".join(caps) or "-",
                     str(loads[name].running if name in loads else 0), str(pending.get(name, 0)),
                     f"{actual.get(name, 0.0):.0%}", f"{rule.weight / total_weight:.0%}"))  # fmt: skip
    return table(rows)


@app.command("list")
@user_errors
def list_(kubeconfig: Kubeconfig = None) -> None:
    """TaskQueues with their weight, cap, running and pending tasks, and actual share of the running tasks.

    Example:  foreman queue list
    """

    async def run() -> str:
        async with await ForemanClient.connect(kubeconfig, retry=CLI_RETRY) as foreman:
            return queues_table(await fleet_view(foreman.kube, None, utcnow()), utcnow())

    emit(asyncio.run(run()))
