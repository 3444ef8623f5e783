"""Escalation end to end: the real apiserver, controller and workers, and scripted model servers. A small model's
failure sends the task back to Pending for the next model of its Agent's ladder, placed where that model is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.tooling.scripted_llm import ScriptedLLM, Turn
from foreman.worker.executors.agent import AgentExecutor
from tests.clusters import Cluster
from tests.integration.helpers import make_task, running_controller, running_worker, wait_for
from tests.integration.test_agent import agent_settings, finished, make_agent
from tests.integration.test_gates import UNITTEST, submit

PREVIOUS = "A previous attempt did not succeed."


def first_message(request: dict[str, Any]) -> str:
    return next(str(m["content"]) for m in request["messages"] if m["role"] == "user")


async def test_a_small_model_without_a_tool_call_escalates_to_the_next_model_on_the_node_that_serves_it(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    chatty = ScriptedLLM(lambda request: Turn(content="I think it is fine."), model="small")
    able = ScriptedLLM(lambda request: submit("done by the large model"), model="large")
    async with (
        chatty, able, running_controller(kube, namespace),
        running_worker(kube, "small-box", namespace, {"agent": AgentExecutor},
                       executors=agent_settings(chatty, tmp_path / "small")),
        running_worker(kube, "large-box", namespace, {"agent": AgentExecutor},
                       executors=agent_settings(able, tmp_path / "large")),
    ):  # fmt: skip
        await make_agent(kube, namespace, "climber", escalation=["small", "large"])
        await make_task(kube, namespace, "climb", executor="agent", agentRef="climber",
                        payload={"prompt": "Say GO."})  # fmt: skip
        task = await wait_for(kube, namespace, "climb", finished, timeout=60)
    # NB: read after the workers stopped: each wrote its Events before its run ended
    events = await kube.list_raw("v1", "Event", namespace, "involvedObject.name=climb")
    assert [(e["type"], e["reason"], e["message"]) for e in events if e["reason"] == "Escalated"] == [
        ("Warning", "Escalated", "escalated from small to large (NoToolCall)")
    ]
    assert (task.phase, task.status.verdict) == ("Succeeded", "GO"), task.status
    assert {r["model"] for r in chatty.requests} == {"small"}
    assert [r["model"] for r in able.requests] == ["large"]
    assert PREVIOUS not in first_message(chatty.requests[0])
    told = first_message(able.requests[0])
    assert PREVIOUS in told
    assert "Attempt 1 with model small ended INCOMPLETE (NoToolCall)" in told
    history = task.status.attempt_history
    assert [(a.model, a.node, a.verdict, a.outcome) for a in history] == [
        ("small", "small-box", "INCOMPLETE", "Escalated"), ("large", "large-box", "GO", "Completed"),
    ]  # fmt: skip
    assert task.status.attempts == 0  # escalations spend no retries
    assert task.status.result is not None
    assert [a.model for a in task.status.result.attempts] == ["small", "large"]


async def test_a_ladder_that_runs_out_ends_with_the_last_attempts_gate_fail(
    kube: Kube, namespace: str, tmp_path: Path, repository: Path
) -> None:
    async with ScriptedLLM(lambda request: submit("all good"), models=["small", "large"]) as llm:
        executors = agent_settings(llm, tmp_path, allowCommands=[["python3", "-m", "unittest"]],
                                   allowRepos=[str(repository)])  # fmt: skip
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "ladder-box", namespace, {"agent": AgentExecutor}, executors=executors),
        ):
            await make_agent(kube, namespace, "stuck", gates=[UNITTEST], maxFixRounds=0)
            await make_task(kube, namespace, "never-fixed", executor="agent", agentRef="stuck",
                            escalation=["small", "large"],
                            payload={"prompt": "Fix the bug.", "repo": str(repository)})  # fmt: skip
            task = await wait_for(kube, namespace, "never-fixed", finished, timeout=60)
    assert (task.phase, task.status.verdict) == ("Succeeded", "GATE-FAIL"), task.status
    assert [r["model"] for r in llm.requests] == ["small", "large"]
    told = first_message(llm.requests[1])
    assert "Its last gate failure: unittest (exit status 1)" in told
    assert "AssertionError" in told
    assert [(a.model, a.verdict) for a in task.status.attempt_history] == [("small", "GATE-FAIL"),
                                                                           ("large", "GATE-FAIL")]  # fmt: skip
