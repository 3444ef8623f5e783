"""Every attempt of an agent task keeps its own transcript, usage and outcome: the real apiserver, controller and
worker, and a scripted model server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.models import transcript
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.scripted_llm import Call, ScriptedLLM, Turn
from foreman.worker.executors.agent import AgentExecutor
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, make_task, running_controller, running_worker, wait_for
from tests.integration.test_agent import agent_settings, finished


def answered_turns(task: AgenticTask) -> bool:
    history = task.status.attempt_history
    return bool(history) and history[-1].finished_at is None and task.status.transcript_ref is not None


async def test_a_retried_task_keeps_each_attempts_transcript_usage_and_outcome(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    asked: list[int] = []

    def model(request: dict[str, Any]) -> Turn:
        asked.append(len(asked))
        if len(asked) == 1:  # attempt 1: one answer, then a model that never answers in time
            return Turn("Looking first.", calls=[Call("list_files", {"path": "."})], prompt_tokens=70,
                        completion_tokens=7)  # fmt: skip
        if len(asked) == 2:
            return Turn(delay=60)
        return Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": "second time lucky"})],
                    prompt_tokens=40, completion_tokens=4)  # fmt: skip

    async with (
        ScriptedLLM(model) as llm, running_controller(kube, namespace),
        running_worker(kube, "retry-box", namespace, {"agent": AgentExecutor}, retry_backoff=0.1,
                       executors=agent_settings(llm, tmp_path)),
    ):  # fmt: skip
        await make_task(kube, namespace, "twice", executor="agent", retries=1, timeoutSeconds=3,
                        payload={"prompt": "Go."})  # fmt: skip
        task = await wait_for(kube, namespace, "twice", finished, timeout=60)
        code, logs_latest, err = await foreman_cli(cluster, "logs", "twice", "-n", namespace)
        assert code == 0, err
        code, logs_first, err = await foreman_cli(cluster, "logs", "twice", "--attempt", "1", "-n", namespace)
        assert code == 0, err
        code, _missing, err = await foreman_cli(cluster, "logs", "twice", "--attempt", "3", "-n", namespace)
        assert code == 2
        assert "twice has no attempt 3 (its attempts: 1, 2)" in err
        code, described, err = await foreman_cli(cluster, "describe", "task", "twice", "-n", namespace)
        assert code == 0, err
        first = await kube.get_raw("v1", "ConfigMap", "twice-transcript", namespace)
        second = await kube.get_raw("v1", "ConfigMap", "twice-transcript-2", namespace)
    assert task.phase == "Succeeded", task.status
    assert task.status.verdict == "GO"
    one, two = task.status.attempt_history
    assert (one.number, one.node, one.outcome, one.verdict) == (1, "retry-box", "Timeout", None)
    assert (two.number, two.node, two.outcome, two.verdict) == (2, "retry-box", "Completed", "GO")
    assert one.usage is not None  # the timed-out attempt's usage is kept
    assert two.usage is not None
    assert (one.usage.prompt_tokens, one.usage.completion_tokens, one.usage.turns) == (70, 7, 1)
    assert (two.usage.prompt_tokens, two.usage.completion_tokens, two.usage.turns) == (40, 4, 1)
    assert (one.transcript_ref, two.transcript_ref) == ("twice-transcript", "twice-transcript-2")
    assert one.finished_at is not None
    assert two.started_at is not None
    assert one.finished_at <= two.started_at
    assert task.status.transcript_ref == "twice-transcript-2"
    assert task.status.usage == two.usage
    assert task.status.result is not None
    assert task.status.result.attempts == [one, two]
    # each attempt's transcript is its own
    first_records = transcript.parse(first["data"][transcript.KEY])
    second_records = transcript.parse(second["data"][transcript.KEY])
    assert [r["event"] for r in first_records][-1] == "end"
    assert first_records[-1]["reason"] == "Stopped"
    assert any(c.get("name") == "list_files" for r in first_records for c in r.get("toolCalls", []))
    assert second_records[-1]["verdict"] == "GO"
    assert not any(c.get("name") == "list_files" for r in second_records for c in r.get("toolCalls", []))
    assert "call   list_files(" in logs_first
    assert "end    GO (Submitted)" not in logs_first
    assert "end    GO (Submitted)" in logs_latest
    assert "call   list_files(" not in logs_latest
    assert "Attempts:" in described
    assert "Timeout" in described
    assert "twice-transcript-2" in described


async def test_a_cancelled_attempt_keeps_its_usage(kube: Kube, namespace: str, tmp_path: Path) -> None:
    def model(request: dict[str, Any]) -> Turn:
        if any(m["role"] == "tool" for m in request["messages"]):
            return Turn(delay=60)
        return Turn(calls=[Call("list_files", {"path": "."})], prompt_tokens=30, completion_tokens=3)

    async with (
        ScriptedLLM(model) as llm, running_controller(kube, namespace),
        running_worker(kube, "cancel-box", namespace, {"agent": AgentExecutor},
                       executors=agent_settings(llm, tmp_path)),
    ):  # fmt: skip
        await make_task(kube, namespace, "stopped", executor="agent", payload={"prompt": "Go."})
        await wait_for(kube, namespace, "stopped", answered_turns, timeout=30)
        await wait_for(kube, namespace, "stopped", lambda t: len(llm.requests) >= 2, timeout=30)
        await kube.patch(AgenticTask, "stopped", {"spec": {"cancel": True}}, namespace=namespace)
        task = await wait_for(kube, namespace, "stopped", finished, timeout=30)
    assert (task.phase, task.status.failure_reason) == ("Failed", "Cancelled")
    [attempt] = task.status.attempt_history
    assert attempt.outcome == "Cancelled"
    assert attempt.usage is not None
    assert (attempt.usage.prompt_tokens, attempt.usage.completion_tokens, attempt.usage.turns) == (30, 3, 1)
    assert task.status.usage == attempt.usage
    assert task.status.result is not None
    assert task.status.result.attempts == [attempt]
