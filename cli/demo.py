"""`foreman demo`: the whole system on this machine, start to finish, in one command (also CI's smoke test)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from foreman.api.cron.expression import parse
from foreman.api.http.client import Kube
from foreman.api.http.errors import AlreadyExists
from foreman.api.models import transcript
from foreman.api.models.agents import Agent
from foreman.api.models.base import utcnow
from foreman.api.models.schedules import TaskSchedule, task_name
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling import gitea
from foreman.api.tooling.install import install
from foreman.api.tooling.localcluster import LocalCluster
from foreman.api.tooling.sdk import ForemanClient
from foreman.cli.dashboard.server import Settings, serving
from foreman.cli.errors import UserError, user_errors
from foreman.cli.schedules import schedules_table
from foreman.cli.tasks import follow
from foreman.cli.terminal import emit

NAMESPACE = "demo"
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WORKERS = {
    # name: flags declaring what the node offers (detection would report this machine's own hardware)
    "gpu-box": ["--accelerator", "cuda", "--accelerator-count", "1", "--ram-gb", "80", "--context-tokens", "131072",
                "--max-concurrent", "2", "--model", "qwen2.5-coder-32b"],
    "mac-studio": ["--accelerator", "metal", "--ram-gb", "64", "--context-tokens", "32768",
                   "--label", "foreman.dev/pool=design-team"],
    "cpu-server": ["--accelerator", "cpu", "--ram-gb", "16", "--context-tokens", "8192", "--max-concurrent", "2",
                   "--command", f"{sys.executable} {EXAMPLES / 'agent.py'}"],
}  # fmt: skip
EXPECTED = {
    # task: (phase, verdict or failure reason)
    "hello": ("Succeeded", "GO"),
    "fix-flaky-test": ("Succeeded", "GO"),
    "review-on-mac": ("Succeeded", "GO"),
    "verify-build": ("Succeeded", "GO"),
    "plan": ("Succeeded", "GO"),
    "research-a": ("Succeeded", "GO"),
    "research-b": ("Succeeded", "GO"),
    "report": ("Succeeded", "GO"),
    "gate": ("Succeeded", "NO-GO"),
    "deploy": ("Failed", "UpstreamFailed"),
    "announce": ("Failed", "UpstreamFailed"),
    "slow-summary": ("Failed", "Timeout"),
    "cancelled-early": ("Failed", "Cancelled"),
    "fix-calc": ("Succeeded", "GO"),
}
AGENT_TASK = "fix-calc"
AGENT_NODE = "llm-box"
DEMO_REPOSITORY = "calc"
"""Its name on the local Gitea."""
EXAMPLE_FILES = ["task-hello.yaml", "task-gpu.yaml", "task-selector.yaml", "task-command.yaml", "dag.yaml",
                 "cascade.yaml", "task-timeout-retries.yaml", "task-cancel.yaml"]  # fmt: skip
SCHEDULE_FILES = ["schedule-nightly.yaml", "schedule-every-minute.yaml"]


def say(message: str) -> None:
    typer.secho(message, fg=typer.colors.CYAN, err=True)


def outcome(task: AgenticTask) -> tuple[str, str]:
    return task.phase, (task.status.failure_reason if task.phase == "Failed" else task.status.verdict) or ""


def documents(file: str) -> list[dict[str, Any]]:
    return [{**document, "metadata": {**document["metadata"], "namespace": NAMESPACE}}
            for document in yaml.safe_load_all((EXAMPLES / file).read_text())]  # fmt: skip


async def apply_examples(kube: Kube) -> dict[str, tuple[str, str]]:
    """Create the example tasks and schedules; return what every task is expected to end as, the schedules' included:
    the nightly one is triggered by hand, the every-minute one is awaited at its first fire."""
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for file in EXAMPLE_FILES:
        for document in documents(file):
            with contextlib.suppress(AlreadyExists):
                await kube.create(AgenticTask.model_validate(document))
        say(f"applied examples/{file}")
    expected = dict(EXPECTED)
    for file in SCHEDULE_FILES:
        for document in documents(file):
            schedule = await kube.create(TaskSchedule.model_validate(document))
            assert schedule.metadata.creation_timestamp is not None
            first = parse(schedule.spec.schedule, schedule.spec.time_zone).next_after(
                schedule.metadata.creation_timestamp
            )
            say(f"applied examples/{file}: {schedule.name} first fires at {first:%H:%M} UTC")
            if first - schedule.metadata.creation_timestamp < timedelta(minutes=2):
                expected[task_name(schedule.name, first)] = ("Succeeded", "GO")
            else:
                triggered = await ForemanClient(kube, NAMESPACE).trigger(schedule.name, "demo")
                say(f"  triggered it by hand: {triggered}")
                expected[triggered] = ("Succeeded", "GO")
    return expected


def start_scripted_model(state: Path) -> tuple[subprocess.Popen[str], str, Path]:
    """The scripted OpenAI-compatible server of the tests (a stand-in: the demo needs no model weights), with the
    git repository its script fixes. Returns the process, its base URL and the repository."""
    repository = state / "calc"
    module = "foreman.api.tooling.scripted_llm"
    command = [sys.executable, "-m", module, "--script", "demo", "--repository", str(repository)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        raise UserError("the scripted model server did not start")
    return process, url, repository


def agent_worker_flags(state: Path, url: str, forge: gitea.Gitea | None) -> list[str]:
    """The agent node's flags and config: its commands, pushes, and with the local Gitea its forge (the token in a
    file of the worker's own, never in the task) and its repositories."""
    config = state / "llm-box.yaml"
    agent: dict[str, Any] = {
        "allowCommands": [["python3", "-m", "unittest"]], "push": True, "workspaceRoot": str(state / "ws"),
        "allowRepos": [str(state / "calc")],
    }  # fmt: skip
    if forge is not None:
        token = state / "gitea-token"
        token.touch(mode=0o600)
        token.write_text(forge.token)
        agent["forge"] = {"kind": "gitea", "url": forge.url, "tokenFile": str(token)}
        agent["allowRepos"] = [f"{forge.url}/"]
    config.write_text(yaml.safe_dump({"executors": {"agent": agent}}))
    return ["--accelerator", "cpu", "--ram-gb", "32", "--context-tokens", "32768", "--llm-endpoint", url,
            "--config", str(config), "--model", "qwen2.5-coder:7b"]  # fmt: skip


async def apply_agent_example(kube: Kube, repository: str) -> None:
    """The Agent and its task from examples/, the task pointed at the demo's repository (on the local Gitea, else
    a local path)."""
    for document in documents("agent-coder.yaml"):
        await kube.create(Agent.model_validate(document))
    for document in documents("task-agent.yaml"):
        document["spec"]["payload"]["repo"] = repository
        await kube.create(AgenticTask.model_validate(document))
    say("applied examples/agent-coder.yaml and examples/task-agent.yaml (the model is SCRIPTED, not a real one)")


def show_agent_work(text: str | None, repository: Path, task: AgenticTask | None, forge: gitea.Gitea | None) -> bool:
    """The agent's transcript, then its pull request on the local Gitea (False: it has none), else its branch in
    the local repository."""
    emit(f"\n{AGENT_TASK}: the agent's transcript (foreman logs {AGENT_TASK}; a scripted model, not a real one):")
    for line in transcript.render(transcript.parse(text or ""), width=100):
        emit(f"  {line}")
    if forge is not None:
        result = task.status.result if task is not None else None
        pull = result.pull_request if result is not None else None
        opened = {p["number"]: p["title"] for p in forge.pulls(DEMO_REPOSITORY)}
        if pull is None or pull.number not in opened:
            typer.secho(f"\n{AGENT_TASK} opened no pull request on the local Gitea", fg=typer.colors.RED, err=True)
            return False
        emit(f"\npull request on the local Gitea: {pull.url}  ({opened[pull.number]})")
        return True
    branch = f"foreman/{AGENT_TASK}"
    log = subprocess.run(
        ["git", "-C", str(repository), "log", "--format=%h %an: %s", "-1", branch], capture_output=True, text=True
    )
    emit(f"\nbranch {branch} of the repository: {log.stdout.strip() or log.stderr.strip()}")
    return True


def host_repository(servers: contextlib.ExitStack, repository: Path) -> tuple[gitea.Gitea | None, str]:
    """Where the agent's task works: the demo repository on the local Gitea, started into `servers`, where Gitea
    is built (`make gitea`); else the local repository itself (no pull request)."""
    if (why := gitea.missing()) is not None:
        say(f"{why}; the agent's task opens no pull request (its branch stays in the local repository)")
        return None, str(repository)
    forge = servers.enter_context(gitea.running())
    repo = forge.hosted(DEMO_REPOSITORY, repository)
    say(f"local Gitea at {forge.url} (it stops with the demo): the agent's task ends with a pull request on {repo}")
    return forge, repo


def port_or_any(port: int) -> int:
    """`port` when it is free on loopback, else 0 (any free one): a second demo must not fail for its dashboard."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            say(f"port {port} is taken; the dashboard takes a free one")
            return 0
    return port


async def keep_up_until_enter(url: str) -> None:
    """At a terminal, leave everything running (the dashboard live) until the user presses Enter; headless (CI), not
    at all."""
    if not sys.stdin.isatty():
        return
    say(f"\neverything is still running: the dashboard is at {url} (press Enter to stop it all)")
    await asyncio.to_thread(sys.stdin.readline)


def report(expected: dict[str, tuple[str, str]], tasks: dict[str, AgenticTask], schedules: list[TaskSchedule]) -> bool:
    """Print the result envelopes, the schedules and whether every task ended as expected."""
    emit("\nresult envelopes:")
    for name in sorted(tasks):
        result = tasks[name].status.result
        if result is not None:
            emit(f"  {name}: {result.model_dump_json(by_alias=True, exclude={'extra'})}")
    emit(f"\nschedules:\n{schedules_table(schedules, utcnow())}")
    wrong = {
        name: outcome(tasks[name]) if name in tasks else "never seen"
        for name in expected
        if name not in tasks or outcome(tasks[name]) != expected[name]
    }
    if wrong:
        typer.secho(f"\nunexpected outcomes: {wrong}", fg=typer.colors.RED, err=True)
        return False
    typer.secho(f"\nall {len(expected)} tasks ended as expected", fg=typer.colors.GREEN)
    return True


async def follow_examples(kube: Kube, names: set[str], wait_seconds: float) -> dict[str, AgenticTask]:
    """The tasks' final state (or their state when the time ran out: the outcome check reports the rest)."""
    tasks: dict[str, AgenticTask] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_seconds):
            await follow(kube, NAMESPACE, names, tasks)
    return tasks


@user_errors
def demo(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every task to finish.")] = 120.0,
    keep: Annotated[
        bool, typer.Option(help="Leave the control plane and daemons running (prints how to stop them).")
    ] = False,
    dashboard_port: Annotated[int, typer.Option(help="Port of the dashboard (a free one if it is taken).")] = 8090,
) -> None:
    """Run Foreman end to end on this machine: a local control plane, the controller, four workers with different
    capabilities, and the examples (a fan-out / fan-in DAG, a task only one node fits, a failure that cascades, a
    nightly TaskSchedule fired by hand and an every-minute one awaited at its first fire, up to a minute, and an
    agent that fixes a failing test in a git repository, talking to a scripted model server).

    The dashboard (`foreman dashboard`) shows it all live; at a terminal it stays up, with everything else, until
    you press Enter. Exits 0 when every task ends as expected.

    Example:  foreman demo
    """
    state = Path(tempfile.mkdtemp(prefix="foreman-demo-"))
    cluster = LocalCluster.start(state, progress=say)
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str) -> None:
        log = (state / f"{name}.log").open("wb")
        command = [sys.executable, "-m", "foreman.cli", *args, "--kubeconfig", str(cluster.kubeconfig())]
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

    model, url, repository = start_scripted_model(state)
    say(f"scripted model server (a stand-in for llama.cpp / Ollama: the model is scripted) at {url}")
    servers = contextlib.ExitStack()

    async def run() -> bool:
        async with await Kube.connect(str(cluster.kubeconfig())) as kube:
            say("installing CRDs and RBAC")
            await install(kube)
            spawn("controller", "controller", "--health-port", "0", "--lease-namespace", "default")
            for name, flags in workers.items():
                spawn(name, "worker", "--node-name", name, "--health-port", "0", *flags)
                say(f"worker {name}: {' '.join(flags[:8])}")
            async with serving(kube, Settings(namespace=NAMESPACE), port_or_any(dashboard_port)) as url:
                emit(f"dashboard: {url}  (open it to watch the fleet, the graphs and the agent live)")
                expected = await apply_examples(kube)
                await apply_agent_example(kube, repo)
                tasks = await follow_examples(kube, set(expected), timeout)
                text = await ForemanClient(kube, NAMESPACE).transcript(AGENT_TASK)
                shown = await asyncio.to_thread(show_agent_work, text, repository, tasks.get(AGENT_TASK), forge)
                passed = report(expected, tasks, (await kube.list(TaskSchedule, namespace=NAMESPACE)).items) and shown
                await keep_up_until_enter(url)
                return passed

    try:
        forge, repo = host_repository(servers, repository)
        workers = {**WORKERS, AGENT_NODE: agent_worker_flags(state, url, forge)}
        passed = asyncio.run(run())
    finally:
        model.terminate()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
        model.wait(10)
        servers.close()  # NB: the local Gitea, after the workers that push to it
        if keep:
            say(f"\nthe control plane is still up (logs and data in {state}); look around with:")
            say(f"  export KUBECONFIG={cluster.kubeconfig()}")
            say(f"  foreman get tasks -n {NAMESPACE}; foreman describe task {AGENT_TASK} -n {NAMESPACE}")
            say(f"stop it with: foreman dev down --state-dir {state}")
        else:
            cluster.stop()
            shutil.rmtree(state, ignore_errors=True)
            say("\nall stopped and deleted; `foreman demo --keep` leaves the cluster up to look around in")
    if not passed:
        raise typer.Exit(1)
