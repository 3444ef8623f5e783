"""`foreman schedule list|next|trigger|sync`: recurring tasks (TaskSchedules)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from foreman.api.cron.expression import ScheduleError, parse
from foreman.api.lifecycle import reasons
from foreman.api.models.base import find_condition, utcnow
from foreman.api.models.schedules import TaskSchedule
from foreman.api.tooling.schedule_sync import plan_sync
from foreman.api.tooling.sdk import AlreadyTriggered, ForemanClient
from foreman.cli.errors import UserError, missing_is_a_user_error, user_errors
from foreman.cli.files import documents, resource
from foreman.cli.render import age, table
from foreman.cli.tasks import CLI_RETRY, Kubeconfig, Namespace
from foreman.cli.terminal import emit

app = typer.Typer(help="Recurring tasks: TaskSchedules create AgenticTasks on a cron schedule.", no_args_is_help=True)


async def _client(kubeconfig: str | None, namespace: str | None) -> ForemanClient:
    return await ForemanClient.connect(kubeconfig, namespace=namespace, retry=CLI_RETRY)


def until(moment: datetime | None, now: datetime) -> str:
    return "-" if moment is None else "in " + age(now, now=moment)  # age counts from its first to its second


def schedules_table(schedules: list[TaskSchedule], now: datetime) -> str:
    rows = [("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "NEXT", "SOURCE", "ACCEPTED")]
    for schedule in sorted(schedules, key=lambda s: (s.namespace or "", s.name)):
        spec, status = schedule.spec, schedule.status
        accepted = find_condition(status.conditions, reasons.ACCEPTED)
        verdict = "-" if accepted is None else "yes" if accepted.status == "True" else accepted.reason
        rows.append((schedule.name, spec.schedule, spec.time_zone, str(spec.suspend).lower(), str(len(status.active)),
                     age(status.last_schedule_time, now) + (" ago" if status.last_schedule_time else ""),
                     until(status.next_schedule_time, now), spec.source, verdict))  # fmt: skip
    return table(rows)


@app.command("list")
@user_errors
def list_(
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="In every namespace.")] = False,
    kubeconfig: Kubeconfig = None,
) -> None:
    """TaskSchedules with their last and next fire, active task count, source and whether they are accepted.

    Example:  foreman schedule list -A
    """

    async def run() -> list[TaskSchedule]:
        async with await _client(kubeconfig, namespace) as foreman:
            scope = None if all_namespaces else foreman.namespace
            return (await foreman.kube.list(TaskSchedule, namespace=scope)).items

    schedules = asyncio.run(run())
    emit(schedules_table(schedules, utcnow()) if schedules else "no TaskSchedules")


@app.command("next")
@user_errors
def next_(
    name: Annotated[str | None, typer.Argument(help="A TaskSchedule (or give --cron).")] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="An expression to try instead of a schedule.")] = None,
    time_zone: Annotated[str, typer.Option("--time-zone", help="With --cron: the IANA zone.")] = "UTC",
    count: Annotated[int, typer.Option("--count", "-c", min=1, max=1000, help="How many fires.")] = 5,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """The next fire times of a schedule, in its time zone and in UTC (daylight saving applied).

    Example:  foreman schedule next nightly-review;  foreman schedule next --cron "30 2 * * *" --time-zone Europe/Berlin
    """
    if (name is None) == (cron is None):
        raise UserError("give a schedule NAME or --cron EXPRESSION (one of them)")
    if name is not None:

        async def fetch() -> TaskSchedule:
            async with await _client(kubeconfig, namespace) as foreman:
                return await _get(foreman, name)

        schedule = asyncio.run(fetch())
        cron, time_zone = schedule.spec.schedule, schedule.spec.time_zone
        if schedule.spec.suspend:
            emit(f"{name} is suspended; were it resumed it would fire at:", err=True)
    assert cron is not None
    try:
        parsed = parse(cron, time_zone)
    except ScheduleError as error:
        raise UserError(f"{error.reason}: {error}") from None
    for fire in parsed.upcoming(utcnow(), count):
        local = fire.astimezone(parsed.zone)
        emit(f"{local:%Y-%m-%d %H:%M %a %Z}  ({fire:%Y-%m-%d %H:%M} UTC)")


@app.command()
@user_errors
def trigger(
    name: Annotated[str, typer.Argument(help="The TaskSchedule to fire.")],
    trigger_id: Annotated[
        str | None, typer.Option("--id", help="Fire only if this id was not used before (default: a new one).")
    ] = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Fire a schedule once now, even while suspended and whatever its concurrency policy. The same --id fires once.

    Example:  foreman schedule trigger nightly-review
    """

    async def run() -> str:
        async with await _client(kubeconfig, namespace) as foreman:
            await _get(foreman, name)
            try:
                task = await foreman.trigger(name, trigger_id)
            except AlreadyTriggered as fired:
                return f"{fired}; not fired again"
        return f"taskschedule/{name} triggered; its task will be agentictask/{task}"

    emit(asyncio.run(run()))


def load_schedules(path: Path, namespace: str) -> list[TaskSchedule]:
    """Every TaskSchedule in a file or in the YAML files of a folder, validated, cron included."""
    schedules: dict[tuple[str, str], TaskSchedule] = {}
    for where, document in documents(str(path)):
        document.setdefault("metadata", {}).setdefault("namespace", namespace)
        spec = document.get("spec")
        if isinstance(spec, dict) and spec.setdefault("source", "declarative") != "declarative":
            raise UserError(f"{where}: sync keeps declarative schedules; this one says source {spec['source']}")
        schedule = resource(TaskSchedule, document, where)
        try:
            parse(schedule.spec.schedule, schedule.spec.time_zone)
        except ScheduleError as error:
            raise UserError(f"{where}: {error.reason}: {error}") from None
        key = (schedule.namespace or namespace, schedule.name)
        if key in schedules:
            raise UserError(f"{where}: {key[0]}/{key[1]} is defined twice")
        schedules[key] = schedule
    return list(schedules.values())


@app.command()
@user_errors
def sync(
    path: Annotated[Path, typer.Option("--file", "-f", help="A folder of TaskSchedule YAML files (or one file).")],
    prune: Annotated[bool, typer.Option("--prune", help="Delete declarative schedules not in the files.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change; change nothing.")] = False,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Make the cluster's declarative TaskSchedules match the files: create, update and (with --prune) delete.

    Dynamic schedules (created by planners through the SDK) are never touched; a file naming one is an error and
    nothing changes. Pruning looks in the namespaces the files use, and in --namespace.

    Example:  foreman schedule sync -f schedules/ --prune --dry-run
    """
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")

    async def run() -> None:
        async with await _client(kubeconfig, namespace) as foreman:
            wanted = load_schedules(path, foreman.namespace)
            existing = []
            for scope in sorted({foreman.namespace, *(s.namespace or foreman.namespace for s in wanted)}):
                existing += await foreman.list_schedules(scope)
            plan = plan_sync(wanted, existing, prune=prune)
            if plan.conflicts:
                raise UserError("; ".join(plan.conflicts) + " (nothing changed)")
            suffix = " (dry run)" if dry_run else ""
            for verb, schedules in (("created", plan.create), ("configured", plan.update)):
                for schedule in schedules:
                    if not dry_run:
                        await foreman.apply_schedule(schedule)
                    emit(f"taskschedule/{schedule.name} {verb}{suffix}")
            for schedule in plan.unchanged:
                emit(f"taskschedule/{schedule.name} unchanged")
            for schedule in plan.prune:
                if not dry_run:
                    await foreman.delete_schedule(schedule.name, schedule.namespace)
                emit(f"taskschedule/{schedule.name} pruned{suffix}")

    asyncio.run(run())


async def _get(foreman: ForemanClient, name: str) -> TaskSchedule:
    with missing_is_a_user_error("TaskSchedule", name, foreman.namespace):
        return await foreman.get_schedule(name)
