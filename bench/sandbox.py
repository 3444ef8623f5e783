"""The sandbox's cost: the same command run three ways, interleaved in one run on the same machine so that its load
moves all alike: a plain subprocess (what `run` did before the sandbox), the agent's Toolbox unconfined (`sandbox:
none`: its cgroup and rlimits), and the Toolbox sandboxed (bubblewrap, cgroup and rlimits)."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from foreman.api.models.agents import AgentSpec
from foreman.api.models.tasks import AgenticTask
from foreman.worker.agent import workspace
from foreman.worker.agent.tools import Toolbox, command_environment
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.executors.base import ExecutionContext
from foreman.worker.sandbox import process
from foreman.worker.sandbox.sandbox import SandboxSettings, detect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # NB: the scripted model lives with the tests
from foreman.api.tooling.scripted_llm import ScriptedLLM, demo_repository, demo_script

COMMANDS = {"true": ["true"], "python3 -c pass": [sys.executable, "-c", "pass"]}
ROUNDS = 40


async def measure() -> dict[str, dict[str, float]]:
    allow = [["true"], [sys.executable, "-c"]]
    space = workspace.create(tempfile.mkdtemp(prefix="foreman-bench-sandbox-"), "bench")
    boxes = {
        mode: Toolbox(space, ("run",), tuple(map(tuple, allow)), await detect(
            SandboxSettings(sandbox=mode), allow_commands=allow, workspace_root=str(space.root.parent.parent)))
        for mode in ("auto", "none")
    }  # fmt: skip
    if boxes["auto"].sandbox is None or boxes["auto"].sandbox.kind != "bubblewrap":
        raise SystemExit("the sandbox bench needs bubblewrap (make sandbox)")
    environment = command_environment(space)
    figures: dict[str, dict[str, float]] = {}
    for name, argv in COMMANDS.items():
        times: dict[str, list[float]] = {"plain": [], "auto": [], "none": []}
        for _ in range(ROUNDS):
            started = time.perf_counter()
            await process.execute(argv, cwd=str(space.root), env=environment, time_limit=60, keep=32_000)
            times["plain"].append(time.perf_counter() - started)
            for mode, box in boxes.items():
                started = time.perf_counter()
                await box.call("run", {"argv": argv})
                times[mode].append(time.perf_counter() - started)
        plain, sandboxed, unconfined = (statistics.median(times[mode]) for mode in ("plain", "auto", "none"))
        figures[name] = {
            "plain_ms": round(plain * 1000, 1), "unconfined_ms": round(unconfined * 1000, 1),
            "sandboxed_ms": round(sandboxed * 1000, 1), "added_ms": round((sandboxed - plain) * 1000, 1),
            "ratio": round(sandboxed / plain, 2),
        }  # fmt: skip
    await workspace.remove(space)
    figures["demo agent task"] = await demo_task()
    return figures


DEMO_ROUNDS = 5


async def demo_task() -> dict[str, float]:
    """The demo's agent task end to end (clone, five turns of a scripted model, `python3 -m unittest` in its
    workspace, commit and push), sandboxed and unconfined, interleaved; the ratio of the medians."""
    top = Path(tempfile.mkdtemp(prefix="foreman-bench-demo-"))
    times: dict[str, list[float]] = {"auto": [], "none": []}
    async with ScriptedLLM(demo_script) as llm:
        for round_ in range(DEMO_ROUNDS):
            for mode in times:
                repository = demo_repository(top / f"origin-{mode}-{round_}")
                settings = {
                    "endpoint": llm.base_url, "workspaceRoot": str(top / "ws"), "allowRepos": [str(repository)],
                    "allowCommands": [["python3", "-m", "unittest"]], "push": True, "sandbox": mode,
                }  # fmt: skip
                task = AgenticTask.new(f"fix-{mode}-{round_}", prompt="Fix the bug.", executor="agent",
                                       namespace="bench", repo=str(repository))  # fmt: skip
                agent = AgentSpec(tools=["list_files", "read_file", "edit_file", "run", "submit_result"])
                started = time.perf_counter()
                envelope = await AgentExecutor().execute(task, ExecutionContext("bench", 1, settings, agent))
                times[mode].append(time.perf_counter() - started)
                assert envelope.verdict == "GO", envelope
    sandboxed, unconfined = statistics.median(times["auto"]), statistics.median(times["none"])
    return {"sandboxed_s": round(sandboxed, 3), "unconfined_s": round(unconfined, 3),
            "ratio": round(sandboxed / unconfined, 3)}  # fmt: skip


def run() -> dict[str, dict[str, float]]:
    return asyncio.run(measure())
