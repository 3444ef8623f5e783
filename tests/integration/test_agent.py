"""The agent executor end to end: the real apiserver, controller and worker, and a scripted model server over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from foreman.api.http.client import Kube
from foreman.api.models.agents import Agent
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.scripted_llm import Call, Fail, ScriptedLLM, Turn, bench_script, demo_repository, demo_script
from foreman.worker.executors.agent import AgentExecutor
from tests.clusters import Cluster
from tests.integration.helpers import (
    condition,
    foreman_cli,
    make_task,
    running_controller,
    running_worker,
    wait_for,
)

FINISHED = ("Succeeded", "Failed")
ToolsAll = ("list_files", "read_file", "write_file", "edit_file", "grep", "run", "submit_result")


def finished(task: AgenticTask) -> bool:
    return task.phase in FINISHED


def agent_settings(llm: ScriptedLLM, tmp_path: Path, **extra: Any) -> dict[str, dict[str, Any]]:
    settings = {"endpoint": llm.base_url, "workspaceRoot": str(tmp_path / "workspaces"), **extra}
    return {"agent": settings}


async def make_agent(kube: Kube, namespace: str, name: str, **spec: Any) -> Agent:
    return await kube.create(Agent.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec}))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


async def test_the_agent_fixes_a_failing_test_and_commits_on_its_branch(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path, repository: Path
) -> None:

    def counted(request: dict[str, Any]) -> Turn | Fail:
        return dataclasses.replace(demo_script(request), prompt_tokens=100, completion_tokens=10)

    async with ScriptedLLM(counted) as llm:
        executors = agent_settings(
            llm, tmp_path, allowCommands=[["python3", "-m", "unittest"]], push=True, allowRepos=[str(repository)]
        )
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "agent-box", namespace, {"agent": AgentExecutor}, executors=executors) as worker,
        ):
            await make_agent(
                kube, namespace, "fixer", model="scripted-model", tools=list(ToolsAll), maxOutputTokens=512,
                temperature=0.2,
            )  # fmt: skip
            await make_task(
                kube, namespace, "fix-add", executor="agent", agentRef="fixer",
                payload={"prompt": "The tests fail. Fix the bug.", "repo": str(repository)},
            )  # fmt: skip
            task = await wait_for(kube, namespace, "fix-add", finished, timeout=60)
    assert task.phase == "Succeeded", task.status
    assert task.status.verdict == "GO"
    result = task.status.result
    assert result is not None
    assert result.extra["branch"] == "foreman/fix-add"
    assert result.extra["changedFiles"] == ["calc.py"]
    assert git(repository, "rev-parse", "foreman/fix-add").strip() == result.extra["commit"]
    assert "return a + b" in git(repository, "show", "foreman/fix-add:calc.py")
    usage = task.status.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (500, 50, 550)
    assert (usage.turns, usage.tool_calls, usage.model, usage.estimated) == (5, 5, "scripted-model", False)
    assert result.extra["usage"]["totalTokens"] == 550
    assert task.status.transcript_ref == "fix-add-transcript"
    sample = worker.metrics.registry.get_sample_value
    assert sample("foreman_agent_tokens_total", {"model": "scripted-model", "direction": "prompt"}) == 500
    assert sample("foreman_agent_tokens_total", {"model": "scripted-model", "direction": "completion"}) == 50
    assert sample("foreman_agent_tool_calls_total", {"tool": "edit_file", "outcome": "ok"}) == 1
    assert sample("foreman_agent_turns_sum") == 5
    first = llm.requests[0]
    assert (first["model"], first["max_tokens"], first["temperature"], first["stream"]) == (
        "scripted-model",
        512,
        0.2,
        True,
    )
    assert [tool["function"]["name"] for tool in first["tools"]] == list(ToolsAll)
    # the model saw the unittest failure, then the fix passing: the run tool's output went back to it
    tool_results = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert tool_results[3].startswith("exit code 0"), tool_results[3]
    code, out, err = await foreman_cli(cluster, "logs", "fix-add", "-n", namespace)
    assert code == 0, err
    assert "call   edit_file(" in out
    assert "end    GO (Submitted)" in out


async def test_what_local_servers_do_wrong_is_survived_and_never_sent_back(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    script = [
        Fail(500, "model is loading"),
        Turn(calls=[Call("list_files", {"path": "."})], cut_after=4),  # a stream that ends mid-way
        Turn(calls=[Call("read_file", '{"path": "calc')], finish_reason="length"),  # truncated tool-call JSON
        Turn(reasoning="Let me think about where to look.", calls=[Call("read_file", {"path": "calc.py"})]),
        Turn(reasoning="Hmm."),  # only reasoning: nothing to send back; a nudge instead
        Turn(
            calls=[
                Call("read_file", {"path": "../../../etc/passwd"}),
                Call("write_file", {"path": f"/tmp/escape-{namespace}", "content": "x"}),
                Call("run", {"argv": ["rm", "-rf", "/"]}),
                Call("edit_file", {"path": "calc.py", "old": "b", "new": "c"}),
            ]
        ),
        Turn(calls=[Call("submit_result", {"verdict": "NO-GO", "summary": "not fixable here"})]),
    ]
    (tmp_path / "repo").mkdir()
    async with (
        ScriptedLLM(script, reject_stream_options=True) as llm, running_controller(kube, namespace),
        running_worker(
            kube, "flaky-box", namespace, {"agent": AgentExecutor},
            executors=agent_settings(llm, tmp_path, allowCommands=[["python3"]], allowRepos=[str(tmp_path)]),
        ),
    ):  # fmt: skip
        await make_agent(kube, namespace, "runner", tools=list(ToolsAll))
        await make_task(
            kube, namespace, "flaky", executor="agent", agentRef="runner",
            payload={"prompt": "Look around.", "repo": str(demo_repository(tmp_path / "origin"))},
        )  # fmt: skip
        task = await wait_for(kube, namespace, "flaky", finished, timeout=60)
    assert task.phase == "Succeeded", task.status
    assert task.status.verdict == "NO-GO"
    for request in llm.requests:
        assert "stream_options" not in request or request is llm.requests[0]
        for message in request.get("messages", []):
            if message["role"] == "assistant":
                assert message.get("content") or message.get("tool_calls"), "an empty assistant message was sent"
                for call in message.get("tool_calls", []):
                    json.loads(call["function"]["arguments"])  # never a broken call in the history
    results = {m["tool_call_id"]: m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"}
    errors = [text for text in results.values() if text.startswith("error:")]
    assert len(errors) == 4, results
    assert any("'..' is not allowed" in text for text in errors)
    assert any("absolute paths are not allowed" in text for text in errors)
    assert any("command not allowed on this node: rm -rf /" in text for text in errors)
    assert any("occurs" in text and "exactly once" in text for text in errors)
    assert not await asyncio.to_thread(Path(f"/tmp/escape-{namespace}").exists)
    nudges = [
        m for m in llm.requests[-2]["messages"] if m["role"] == "user" and "without calling a tool" in m["content"]
    ]
    assert nudges
    assert task.status.usage is not None
    assert task.status.usage.estimated  # the server sent no usage: estimated


async def test_plain_text_twice_ends_incomplete_and_max_turns_ends_incomplete(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    chatty = [Turn("I would fix it by editing calc.py."), Turn("Done, I think.")]

    def looping(request: dict[str, Any]) -> Turn:
        return Turn(calls=[Call("list_files", {"path": "."})])

    async with ScriptedLLM(chatty) as chat_llm, ScriptedLLM(looping) as loop_llm:
        for name, llm, agent in (("chatty", chat_llm, {}), ("looping", loop_llm, {"maxTurns": 3})):
            async with (
                running_controller(kube, namespace),
                running_worker(kube, f"{name}-box", namespace, {"agent": AgentExecutor},
                               executors=agent_settings(llm, tmp_path)),
            ):  # fmt: skip
                await make_agent(kube, namespace, name, **agent)
                await make_task(kube, namespace, name, executor="agent", agentRef=name, payload={"prompt": "Go."})
                task = await wait_for(kube, namespace, name, finished, timeout=30)
            assert task.phase == "Succeeded", task.status
            assert task.status.verdict == "INCOMPLETE"
            assert task.status.result is not None
            expected = "NoToolCall" if name == "chatty" else "MaxTurnsExceeded"
            assert task.status.result.failure_reason == expected
    assert len(loop_llm.requests) == 3
    # the same call three times in a row: the third result tells the model it is looping
    last = [m for m in loop_llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(last) == 2  # the third call's result was never sent: maxTurns ended it


async def test_a_task_whose_agent_does_not_exist_waits_without_a_slot(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    submit = [Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": "ok"})])]
    async with (
        ScriptedLLM(submit) as llm,
        running_controller(kube, namespace),
        running_worker(
            kube, "lonely-box", namespace, {"agent": AgentExecutor}, executors=agent_settings(llm, tmp_path)
        ),
    ):
        await make_task(kube, namespace, "orphan", executor="agent", agentRef="missing", payload={"prompt": "Go."})
        task = await wait_for(kube, namespace, "orphan", lambda t: condition(t, "Blocked") is not None)
        assert task.phase == "Pending"
        assert condition(task, "Blocked") == ("True", "AgentNotFound")
        await make_agent(kube, namespace, "missing")
        task = await wait_for(kube, namespace, "orphan", finished, timeout=30)
    assert task.status.verdict == "GO"


async def test_cancel_delete_and_timeout_stop_the_loop_and_kill_a_running_command(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    marker = f"sleeper-{namespace}-"

    def sleep_forever(request: dict[str, Any]) -> Turn:
        task = request["messages"][1]["content"].splitlines()[0]  # each task's prompt is its name
        sleeper = f"import time; time.sleep(120)  # {marker}{task}"
        return Turn(calls=[Call("run", {"argv": ["python3", "-c", sleeper], "timeout_seconds": 600})])

    async with (
        ScriptedLLM(sleep_forever) as llm, running_controller(kube, namespace),
        running_worker(
            kube, "sleepy-box", namespace, {"agent": AgentExecutor}, max_concurrent_tasks=3,
            executors=agent_settings(llm, tmp_path, allowCommands=[["python3", "-c"]], keepWorkspace="always"),
        ),
    ):  # fmt: skip
        await make_agent(kube, namespace, "sleeper", tools=["run"])
        for name, timeout in (("to-cancel", 600), ("to-delete", 600), ("to-time-out", 3)):
            await make_task(
                kube, namespace, name, executor="agent", agentRef="sleeper", timeoutSeconds=timeout,
                payload={"prompt": name},
            )  # fmt: skip
        pids = await _pids(marker, 3)
        await kube.patch(AgenticTask, "to-cancel", {"spec": {"cancel": True}}, namespace=namespace)
        cancelled = await wait_for(kube, namespace, "to-cancel", finished, timeout=2)
        await _gone(pids["to-cancel"], within=2)
        await kube.delete(AgenticTask, "to-delete", namespace)
        await _gone(pids["to-delete"], within=2)
        timed_out = await wait_for(kube, namespace, "to-time-out", finished, timeout=10)
        await _gone(pids["to-time-out"], within=2)
    assert (cancelled.phase, cancelled.status.failure_reason) == ("Failed", "Cancelled")
    assert (timed_out.phase, timed_out.status.failure_reason) == ("Failed", "Timeout")


async def _pids(marker: str, count: int) -> dict[str, set[int]]:
    """The host pids of the sleeping commands (the sandbox's and the command's: their command lines carry the
    marker and the task's name), by task, once every task's command runs."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        running = await asyncio.to_thread(_running, marker)
        if len(running) == count:
            return running
        await asyncio.sleep(0.05)
    raise AssertionError("the commands never started")


def _running(marker: str) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in words:
            task = words.split(marker, 1)[1].split("\0", 1)[0]
            found.setdefault(task, set()).add(int(entry.name))
    return found


async def _gone(pids: set[int], *, within: float) -> None:
    deadline = time.monotonic() + within
    for pid in pids:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"process {pid} still running after {within} s"
            await asyncio.sleep(0.02)


async def test_the_node_offers_agent_only_while_its_model_server_answers(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    async def offers_agent(expected: bool) -> None:
        deadline = time.monotonic() + 10
        while ("agent" in (await kube.get(FleetNode, "probe-box")).status.capability.executors) != expected:
            assert time.monotonic() < deadline, f"the node never {'offered' if expected else 'stopped offering'} agent"
            await asyncio.sleep(0.05)

    async with (
        ScriptedLLM([]) as llm,
        running_worker(
            kube, "probe-box", namespace, {"agent": AgentExecutor}, executors=agent_settings(llm, tmp_path),
            heartbeat_interval=0.2,
        ),
    ):  # fmt: skip
        await offers_agent(True)
        llm.down = True
        await offers_agent(False)
        llm.down = False
        await offers_agent(True)


async def test_foreman_logs_follows_a_running_agent_until_it_ends(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    async with (
        ScriptedLLM(bench_script(turns=4, delay=0.3)) as llm,
        running_controller(kube, namespace),
        running_worker(
            kube, "follow-box", namespace, {"agent": AgentExecutor}, executors=agent_settings(llm, tmp_path)
        ),
    ):
        await make_task(kube, namespace, "followed", executor="agent", payload={"prompt": "Go."})
        code, out, err = await foreman_cli(cluster, "logs", "followed", "-f", "-n", namespace)
        task = await kube.get(AgenticTask, "followed", namespace)
    assert code == 0, err
    assert task.phase == "Succeeded"  # -f ended by itself when the task did
    turns = [line for line in out.splitlines() if " call   " in line]
    called = [line.split(" call   ", 1)[1].split("(")[0] for line in turns]
    assert called == ["write_file", "read_file", "edit_file", "submit_result"]
    assert out.splitlines()[-1].startswith("[  4] end    GO (Submitted)")


REAL_URL, REAL_MODEL = os.environ.get("FOREMAN_TEST_LLM_URL"), os.environ.get("FOREMAN_TEST_LLM_MODEL")


@pytest.mark.skipif(
    not (REAL_URL and REAL_MODEL),
    reason="set FOREMAN_TEST_LLM_URL (e.g. http://127.0.0.1:11434/v1) and FOREMAN_TEST_LLM_MODEL to run against a "
    "real model server",
)
@pytest.mark.timeout(1000)
async def test_a_real_model_fixes_the_repository(kube: Kube, namespace: str, tmp_path: Path, repository: Path) -> None:
    assert REAL_URL is not None
    executors = {
        "agent": {"endpoint": REAL_URL, "workspaceRoot": str(tmp_path / "ws"), "push": True,
                  "allowCommands": [["python3", "-m", "unittest"]], "allowRepos": [str(repository)]}
    }  # fmt: skip
    async with (
        running_controller(kube, namespace),
        running_worker(kube, "real-box", namespace, {"agent": AgentExecutor}, executors=executors),
    ):
        await make_agent(kube, namespace, "coder", model=REAL_MODEL, tools=list(ToolsAll), maxTurns=25)
        await make_task(
            kube, namespace, "fix-real", executor="agent", agentRef="coder", timeoutSeconds=900,
            payload={"prompt": "The unit tests fail (python3 -m unittest). Find the bug, fix it, run the tests, "
                     "and submit GO when they pass.", "repo": str(repository)},
        )  # fmt: skip
        task = await wait_for(kube, namespace, "fix-real", finished, timeout=900)
    assert task.status.verdict == "GO", task.status.result
    assert "return a + b" in git(repository, "show", "foreman/fix-real:calc.py")
