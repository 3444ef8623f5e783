"""Verify gates end to end: the real apiserver, controller and worker (its sandbox), and a scripted model server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.models.gates import OUTPUT_TAIL
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.scripted_llm import Call, ScriptedLLM, Turn
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.executors.stub import StubExecutor
from tests.clusters import Cluster
from tests.integration.helpers import condition, foreman_cli, make_task, running_controller, running_worker, wait_for
from tests.integration.test_agent import agent_settings, finished, make_agent

UNITTEST = {"name": "unittest", "argv": ["python3", "-m", "unittest"], "timeoutSeconds": 60}
NOT_ACCEPTED = "Your result was not accepted"


def submit(summary: str = "done") -> Turn:
    return Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": summary})])


def fix_rounds_seen(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user" and NOT_ACCEPTED in m["content"]]


async def test_a_failing_gate_goes_back_to_the_model_which_fixes_it_and_then_the_gates_pass(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path, repository: Path
) -> None:
    def model(request: dict[str, Any]) -> Turn:
        last = request["messages"][-1]
        if not fix_rounds_seen(request):
            return submit("add() looks right to me")  # a GO without checking: the gate catches it
        if last["role"] == "user":
            # NB: not the same size as before: the gate's first run left a .pyc that a same-size edit within the
            # same second would not invalidate (Python checks the source's mtime in seconds, and its size)
            fixed = {"path": "calc.py", "old": "return a - b", "new": "return a + b  # fixed"}
            return Turn(calls=[Call("edit_file", fixed)])
        return submit("fixed add(): it subtracted")

    async with ScriptedLLM(model) as llm:
        executors = agent_settings(
            llm, tmp_path, allowCommands=[["python3", "-m", "unittest"]], allowRepos=[str(repository)]
        )
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "gate-box", namespace, {"agent": AgentExecutor}, executors=executors),
        ):
            await make_agent(kube, namespace, "gated", gates=[UNITTEST])
            await make_task(kube, namespace, "fix-gated", executor="agent", agentRef="gated",
                            payload={"prompt": "Fix the bug.", "repo": str(repository)})  # fmt: skip
            task = await wait_for(kube, namespace, "fix-gated", finished, timeout=60)
    assert task.phase == "Succeeded", task.status
    assert task.status.verdict == "GO"
    result = task.status.result
    assert result is not None
    assert [(g.name, g.status, g.exit_status) for g in result.gates] == [("unittest", "passed", 0)]
    assert result.fix_rounds == 1
    assert result.extra["changedFiles"] == ["calc.py"]
    # the failing gate's output reached the model in the turn after its GO, as a user message
    assert len(llm.requests) == 3
    told = fix_rounds_seen(llm.requests[1])
    assert len(told) == 1
    assert "`unittest` (`python3 -m unittest`) failed with exit status 1" in told[0]
    assert "AssertionError: -1 != 5" in told[0]
    code, out, err = await foreman_cli(cluster, "logs", "fix-gated", "-n", namespace)
    assert code == 0, err
    assert "gate   unittest: failed (exit 1" in out
    assert "gate   unittest: passed (exit 0" in out
    code, out, err = await foreman_cli(cluster, "describe", "task", "fix-gated", "-n", namespace)
    assert code == 0, err
    assert "Gates:        1 fix round" in out
    assert "unittest" in out
    assert "passed" in out


async def test_gates_that_keep_failing_end_gate_fail_after_max_fix_rounds(
    kube: Kube, namespace: str, tmp_path: Path, repository: Path
) -> None:
    async with ScriptedLLM(lambda request: submit("all good")) as llm:
        executors = agent_settings(llm, tmp_path, allowCommands=[["python3"]], allowRepos=[str(repository)])
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "failing-box", namespace, {"agent": AgentExecutor}, executors=executors),
        ):
            # the task's own gates and maxFixRounds replace its Agent's
            await make_agent(kube, namespace, "stubborn", gates=[{"name": "noop", "argv": ["python3", "-c", "pass"]}],
                             maxFixRounds=3)  # fmt: skip
            await make_task(kube, namespace, "never-fixed", executor="agent", agentRef="stubborn", gates=[UNITTEST],
                            maxFixRounds=1, payload={"prompt": "Fix the bug.", "repo": str(repository)})  # fmt: skip
            task = await wait_for(kube, namespace, "never-fixed", finished, timeout=60)
    assert task.phase == "Succeeded", task.status
    assert task.status.verdict == "GATE-FAIL"
    result = task.status.result
    assert result is not None
    assert result.failure_reason == "GateFailed"
    assert result.fix_rounds == 1
    [gate] = result.gates
    assert (gate.name, gate.status, gate.exit_status) == ("unittest", "failed", 1)
    assert "AssertionError: -1 != 5" in gate.output_tail
    assert result.summary.startswith("verify gate unittest failed with exit status 1 after 1 fix round")
    assert len(llm.requests) == 2  # the first GO, and one fix round
    assert "commit" not in result.extra  # nothing committed for a GATE-FAIL


async def test_a_gate_that_prints_endlessly_or_sleeps_is_killed_at_its_timeout_and_the_worker_goes_on(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    marker = f"gate-sleeper-{namespace}"
    gates = {
        "spews": {"name": "spew", "argv": ["python3", "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"],
                  "timeoutSeconds": 3},
        "sleeps": {"name": "sleep", "argv": ["python3", "-c", f"import time; print('{marker}', flush=True); "
                                             "time.sleep(600)"], "timeoutSeconds": 1},
        "passes": {"name": "quick", "argv": ["python3", "-c", "print('ok')"]},
    }  # fmt: skip
    async with ScriptedLLM(lambda request: submit()) as llm:
        executors = agent_settings(llm, tmp_path, allowCommands=[["python3"]])
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "spew-box", namespace, {"agent": AgentExecutor}, executors=executors),
        ):
            ended: dict[str, AgenticTask] = {}
            for name, gate in gates.items():  # one after another, on the same worker
                await make_task(kube, namespace, name, executor="agent", gates=[gate], maxFixRounds=0,
                                timeoutSeconds=120, payload={"prompt": "Go."})  # fmt: skip
                ended[name] = await wait_for(kube, namespace, name, finished, timeout=90)
    for name in ("spews", "sleeps"):
        task = ended[name]
        assert (task.phase, task.status.verdict) == ("Succeeded", "GATE-FAIL"), task.status
        assert task.status.result is not None
        [gate] = task.status.result.gates
        assert (gate.status, gate.exit_status) == ("timedOut", None)
        assert len(gate.output_tail) <= OUTPUT_TAIL
    spew = ended["spews"].status.result.gates[0]  # type: ignore[union-attr]
    assert spew.output_bytes > 10 * 1024 * 1024, spew.output_bytes  # printed far more than was kept
    assert set(spew.output_tail) == {"x"}
    sleep = ended["sleeps"].status.result.gates[0]  # type: ignore[union-attr]
    assert marker in sleep.output_tail
    assert sleep.seconds < 30
    assert not await asyncio.to_thread(_running, marker), "the sleeping gate outlived its timeout"
    assert ended["passes"].status.verdict == "GO"  # the worker went on unharmed
    assert [g.status for g in ended["passes"].status.result.gates] == ["passed"]  # type: ignore[union-attr]


async def test_a_task_whose_gate_the_node_does_not_allow_stays_pending_saying_so(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    async with ScriptedLLM(lambda request: submit()) as llm:
        executors = agent_settings(llm, tmp_path, allowCommands=[["python3", "-m", "unittest"]])
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "strict-box", namespace, {"agent": AgentExecutor}, executors=executors),
        ):
            await make_task(kube, namespace, "make-gated", executor="agent", payload={"prompt": "Go."},
                            gates=[{"name": "build", "argv": ["make", "test"]}, UNITTEST])  # fmt: skip
            task = await wait_for(
                kube, namespace, "make-gated", lambda t: condition(t, "Blocked") == ("True", "GateNotAllowed")
            )
            code, out, err = await foreman_cli(cluster, "describe", "task", "make-gated", "-n", namespace)
    assert task.phase == "Pending"
    blocked = next(c for c in task.status.conditions if c.type == "Blocked")
    assert "allows its gate commands (make test; python3 -m unittest)" in blocked.message
    assert not llm.requests  # never run
    assert code == 0, err
    assert "GateNotAllowed" in out


def _running(marker: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


async def test_an_executor_that_runs_no_gates_cannot_pass_a_task_that_has_them(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    async with ScriptedLLM(lambda request: submit()) as llm:
        executors = agent_settings(llm, tmp_path, allowCommands=[["python3"]])
        plugins = {"agent": AgentExecutor, "stub": StubExecutor}
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "mixed-box", namespace, plugins, executors=executors),
        ):
            await make_task(kube, namespace, "stub-gated", executor="stub", gates=[UNITTEST])
            task = await wait_for(kube, namespace, "stub-gated", finished, timeout=30)
    assert (task.phase, task.status.failure_reason) == ("Failed", "ExecutorContractViolation")
    finished_condition = next(c for c in task.status.conditions if c.type == "Finished")
    assert "verdict GO without a passed result for each gate (unittest)" in finished_condition.message
