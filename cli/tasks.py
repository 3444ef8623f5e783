"""Task commands: submit, get, describe, cancel, result."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer
import yaml

from foreman.api.http.client import Kube, Relisted, RetryPolicy
from foreman.api.http.errors import AlreadyExists
from foreman.api.models.base import Key, key_of, utcnow
from foreman.api.models.envelope import PASSING_VERDICTS
from foreman.api.models.nodes import FleetNode
from foreman.api.models.subtasks import PARENT_LABEL
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask
from foreman.api.tooling.sdk import AlreadyFinished, ForemanClient, WaitTimeout
from foreman.cli.errors import UserError, missing_is_a_user_error, user_errors
from foreman.cli.files import documents, resource
from foreman.cli.lineup import fleet_view
from foreman.cli.render import (
    age,
    attempt_lines,
    clean_up,
    delivery_rows,
    family_lines,
    gate_lines,
    nodes_table,
    pull_request,
    review_line,
    table,
    task_rows,
    tasks_table,
)
from foreman.cli.terminal import emit
from foreman.controller.waiting import Waiting, line_up

Kubeconfig = Annotated[str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file.")]
Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: the kubeconfig context's, else default).")
]
NOT_PASSED, TIMED_OUT = 1, 3
# NB: a person is waiting at the terminal: fail fast when the cluster is not there
CLI_RETRY = RetryPolicy(attempts=2, max_wait=0.5, request_timeout=10)


async def _client(kubeconfig: str | None, namespace: str | None) -> ForemanClient:
    return await ForemanClient.connect(kubeconfig, namespace=namespace, retry=CLI_RETRY)


def load_tasks(source: str) -> list[AgenticTask]:
    """Every AgenticTask in a (multi-document) YAML file, a folder of them or stdin, validated; the first bad
    document stops everything."""
    tasks = [resource(AgenticTask, document, where) for where, document in documents(source)]
    if not tasks:
        raise UserError(f"{'stdin' if source == '-' else source}: no AgenticTask in it")
    return tasks


def passed(task: AgenticTask) -> bool:
    return task.phase == "Succeeded" and task.status.verdict in PASSING_VERDICTS


@user_errors
def submit(
    file: Annotated[
        str,
        typer.Option("--file", "-f", help="YAML file of one or more AgenticTasks, a folder of them, or - for stdin."),
    ],
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until every task finishes.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 3600,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Create the tasks in FILE (upstream first; a dependency cycle or unknown name creates nothing).

    With --wait, prints the table whenever a task changes. Exit codes: 0 when every task Succeeded with a passing
    verdict (GO, GATE-PASS, SKIPPED); 1 when any Failed or finished NO-GO, GATE-FAIL, GATE-ERROR or INCOMPLETE;
    2 for a mistake in the input or no cluster; 3 when --timeout passed first.

    Example:  foreman submit -f examples/dag.yaml --wait
    """
    tasks = load_tasks(file)

    async def run() -> int:
        async with await _client(kubeconfig, namespace) as foreman:
            try:
                if all(task.metadata.name for task in tasks):
                    created = await foreman.submit_graph(tasks)
                else:
                    created = [await foreman.submit(task) for task in tasks]
            except AlreadyExists as error:
                raise UserError(error.message) from None
            except ValueError as error:
                raise UserError(str(error)) from None
            for task in created:
                emit(f"agentictask/{task.name} created")
            if not wait:
                return 0
            return await _follow(foreman, [task.name for task in created], timeout)

    raise typer.Exit(asyncio.run(run()))


async def follow(kube: Kube, namespace: str, names: set[str], current: dict[str, AgenticTask]) -> None:
    """Show the named tasks as they change, until all are finished; `current` holds the latest state of each (and
    what was seen so far when the caller's timeout ends the wait).

    On a terminal the table is redrawn in place; otherwise (a pipe, a CI log) the table is printed once and then
    only the rows that changed, each with the time."""
    redraw = sys.stdout.isatty()
    shown: dict[str, str] = {}
    drawn_lines = 0
    async for event in kube.watch(AgenticTask, namespace=namespace):
        for task in event.items if isinstance(event, Relisted) else [event.object]:
            if task.name in names:
                current[task.name] = task
        lines = table(task_rows(current.values())).splitlines()
        rows = dict(zip((t.name for t in sorted(current.values(), key=lambda t: t.name)), lines[1:], strict=True))
        changed = [row for name, row in rows.items() if shown.get(name) != row]
        if changed and redraw:
            # NB: up over what was drawn, clear to the end of the screen, draw again
            typer.echo(f"\x1b[{drawn_lines}F\x1b[J" if drawn_lines else "", nl=False)  # ours, not data
            emit("\n".join(lines))
            drawn_lines = len(lines)
        elif changed:
            stamp = time.strftime("%H:%M:%S")
            header = [lines[0]] if not shown else []
            emit("\n".join(header + [f"{row}    ({stamp})" for row in changed]))
        shown = rows
        if len(current) == len(names) and all(t.phase in TERMINAL_PHASES for t in current.values()):
            return


async def _follow(foreman: ForemanClient, names: list[str], wait_seconds: float) -> int:
    current: dict[str, AgenticTask] = {}
    try:
        async with asyncio.timeout(wait_seconds):
            await follow(foreman.kube, foreman.namespace, set(names), current)
    except TimeoutError:
        unfinished = sorted(
            f"{name} ({current[name].phase if name in current else 'not seen'})"
            for name in names
            if name not in current or current[name].phase not in TERMINAL_PHASES
        )
        message = f"not finished after {wait_seconds:g} s: {', '.join(unfinished)}"
        emit(f"error: {WaitTimeout(message)}", err=True)
        return TIMED_OUT
    return 0 if all(passed(task) for task in current.values()) else NOT_PASSED


@user_errors
def get(
    what: Annotated[str, typer.Argument(help="tasks or nodes")],
    output: Annotated[str, typer.Option("--output", "-o", help="table, wide, yaml or json")] = "table",
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep printing as things change.")] = False,
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Tasks in every namespace.")] = False,
    kubeconfig: Kubeconfig = None,
) -> None:
    """List tasks or FleetNodes.

    Example:  foreman get tasks -n research -o yaml;  foreman get nodes -w
    """
    model: type[AgenticTask] | type[FleetNode]
    if what in ("tasks", "task", "at"):
        model = AgenticTask
    elif what in ("nodes", "node", "fn"):
        model = FleetNode
    else:
        raise UserError(f"get what? `tasks` or `nodes`, not {what!r}")
    if output not in ("table", "wide", "yaml", "json"):
        raise UserError(f"--output is table, wide, yaml or json, not {output!r}")

    def render(items: list[Any], waiting: Mapping[Key, Waiting] | None = None) -> str:
        if output in ("table", "wide") and model is AgenticTask:
            return tasks_table(items, namespaces=all_namespaces, wide=output == "wide", waiting=waiting)
        if output in ("table", "wide"):
            return nodes_table(items, wide=output == "wide")
        bodies = [item.to_wire() for item in items]
        return (
            yaml.safe_dump_all(bodies, sort_keys=False)
            if output == "yaml"
            else json.dumps(bodies, indent=2, default=str)
        )

    async def run() -> None:
        async with await _client(kubeconfig, namespace) as foreman:
            scope = None if all_namespaces or model is FleetNode else foreman.namespace
            if model is AgenticTask and output in ("table", "wide"):
                await _tasks_table(foreman.kube, scope, watch=watch, render=render)
                return
            if not watch:
                emit(render((await foreman.kube.list(model, namespace=scope)).items))
                return
            current: dict[str, Any] = {}
            async for event in foreman.kube.watch(model, namespace=scope):
                if isinstance(event, Relisted):
                    current = {item.name: item for item in event.items}
                elif event.type == "DELETED":
                    current.pop(event.object.name, None)
                else:
                    current[event.object.name] = event.object
                emit(render(list(current.values())) + "\n")

    asyncio.run(run())


async def _tasks_table(
    kube: Kube, scope: str | None, *, watch: bool, render: Callable[[list[Any], Mapping[Key, Waiting]], str]
) -> None:
    """Tasks with where each Pending one stands and why it waits, computed as the controller would now; with
    `watch`, again at every change of a task (nodes and queues as they were at the start)."""
    fleet = await fleet_view(kube, scope, utcnow())

    def shown() -> list[AgenticTask]:
        return [task for ns, tasks in fleet.tasks.items() if scope in (None, ns) for task in tasks.values()]

    if not watch:
        emit(render(shown(), line_up(fleet, utcnow())))
        return
    async for event in kube.watch(AgenticTask, namespace=scope):
        if isinstance(event, Relisted):
            fleet.replace_tasks(event.items, scope)
        elif event.type == "DELETED":
            fleet.remove_task(key_of(event.object))
        else:
            fleet.upsert_task(event.object)
        emit(render(shown(), line_up(fleet, utcnow())) + "\n")


@user_errors
def describe(
    what: Annotated[str, typer.Argument(help="task")],
    name: Annotated[str, typer.Argument(help="the task's name")],
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """A task's spec, timeline, conditions, result envelope, deliveries of its result and events.

    Example:  foreman describe task report
    """
    if what not in ("task", "tasks", "at"):
        raise UserError(f"describe what? `task NAME`, not {what!r}")

    async def run() -> None:
        async with await _client(kubeconfig, namespace) as foreman:
            task = await _get(foreman, name)
            events = await foreman.kube.list_raw("v1", "Event", foreman.namespace, f"involvedObject.name={name}")
            line = line_up(await fleet_view(foreman.kube, foreman.namespace, utcnow()), utcnow()).get(key_of(task))
            labelled = await foreman.kube.list(AgenticTask, namespace=foreman.namespace,
                                               label_selector=f"{PARENT_LABEL}={name}")  # fmt: skip
        spec, status = task.spec, task.status
        need = spec.required_capability
        conditions = [("  TYPE", "STATUS", "REASON", "AGE", "MESSAGE")]
        conditions += [
            (f"  {c.type}", c.status, c.reason, age(c.last_transition_time), c.message) for c in status.conditions
        ]
        deliveries = delivery_rows(task)
        event_rows = [("  REASON", "TYPE", "MESSAGE")]
        event_rows += [(f"  {e.get('reason', '')}", e.get("type", ""), e.get("message", "")) for e in events]
        lines = [
            f"Name:         {task.name}",
            f"Namespace:    {task.namespace}",
            f"Kind:         {spec.kind}    Executor: {spec.executor}    Priority: {spec.priority}",
            f"Needs:        accelerator {need.accelerator}, {need.min_ramgb:g} GB RAM, {need.min_context_tokens} tokens"
            + "".join(f", {k}={v}" for k, v in need.node_selector.items()),
            f"Depends on:   {', '.join(spec.depends_on) or '-'}",
            *family_lines(task, labelled.items),
            f"Phase:        {status.phase}    Node: {status.assigned_node or '-'}    Verdict: {status.verdict or '-'}"
            f"    Reason: {status.failure_reason or '-'}    Attempts: {status.attempts}/{spec.retries + 1}",
            f"Timeline:     created {task.metadata.creation_timestamp}, claimed {status.claimed_at or '-'}, "
            f"finished {status.finished_at or '-'}",
            *([f"Waiting:      {line.sentence()}"] if line is not None else []),
            *([f"Pull request: {pull}"] if (pull := pull_request(task)) else []),
            *([reviewed] if (reviewed := review_line(task)) else []),
            f"Clean-up:     {clean_up(task)}",
            *gate_lines(status.result),
            *attempt_lines(task),
            "Conditions:",
            table(conditions),
            "Result:",
            "  "
            + (status.result.model_dump_json(by_alias=True, indent=2).replace("\n", "\n  ") if status.result else "-"),
            "Deliveries:",
            table(deliveries) if len(deliveries) > 1 else "  -",
            "Events:",
            table(event_rows),
        ]
        emit("\n".join(lines))

    asyncio.run(run())


async def _get(foreman: ForemanClient, name: str) -> AgenticTask:
    with missing_is_a_user_error("task", name, foreman.namespace):
        return await foreman.get(name)


@user_errors
def cancel(name: Annotated[str, typer.Argument()], namespace: Namespace = None, kubeconfig: Kubeconfig = None) -> None:
    """Cancel a task: Pending or Scheduled fail at once, Running stop within seconds (reason Cancelled). A task
    that already finished is left as it is, and the command says so.

    Example:  foreman cancel slow-summary
    """

    async def run() -> str:
        async with await _client(kubeconfig, namespace) as foreman:
            with missing_is_a_user_error("task", name, foreman.namespace):
                try:
                    await foreman.cancel(name)
                except AlreadyFinished as finished:
                    return str(finished)
        return f"agentictask/{name} cancelled"

    emit(asyncio.run(run()))


@user_errors
def result(name: Annotated[str, typer.Argument()], namespace: Namespace = None, kubeconfig: Kubeconfig = None) -> None:
    """Print a finished task's foreman.v1 result envelope as JSON.

    Example:  foreman result report | jq .verdict
    """

    async def run() -> None:
        async with await _client(kubeconfig, namespace) as foreman:
            task = await _get(foreman, name)
        if task.status.result is None and task.phase == "Failed":
            raise UserError(f"{name} Failed ({task.status.failure_reason}) before any result envelope was written")
        if task.status.result is None:
            raise UserError(f"{name} has no result yet (phase {task.phase})")
        emit(task.status.result.model_dump_json(by_alias=True, indent=2))

    asyncio.run(run())
