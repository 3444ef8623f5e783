"""The review step end to end: the real apiserver, controller and workers, scripted model servers. An agent's GO
whose gates passed goes back to Pending for its reviewer, placed by the reviewer Agent's model on the node that
serves it; the reviewer reads the pushed branch and answers. A reviewer that could not verify is a NO-GO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.lifecycle import reasons
from foreman.api.tooling.scripted_llm import Call, Reply, ScriptedLLM, Turn, demo_script
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.review import REVIEW_PROMPT
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, make_task, running_controller, running_worker, wait_for
from tests.integration.test_agent import ToolsAll, agent_settings, finished, make_agent
from tests.integration.test_escalation import first_message
from tests.integration.test_gates import UNITTEST

REASONS = "add() now adds; the unittest gate passed."


def reviewer(request: dict[str, Any]) -> Reply:
    """`careful-model` reads the change, then answers GO with reasons; `mute-model` never calls a tool."""
    if request["model"] == "mute-model":
        return Turn(content="Looks fine to me.")
    if not any(m["role"] == "tool" for m in request["messages"]):
        return Turn("Reading the change.", calls=[Call("read_file", {"path": "calc.py"})])
    return Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": REASONS})])


async def test_a_go_is_reviewed_on_the_reviewers_node_and_a_reviewer_that_cannot_verify_is_no_go(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path, repository: Path
) -> None:
    coder, reviewers = ScriptedLLM(demo_script), ScriptedLLM(reviewer, models=["careful-model", "mute-model"])
    repos = {"allowRepos": [str(repository)], "push": True}
    unittest = [["python3", "-m", "unittest"]]
    async with (
        coder, reviewers, running_controller(kube, namespace),
        running_worker(kube, "coder-box", namespace, {"agent": AgentExecutor},
                       executors=agent_settings(coder, tmp_path / "coder", allowCommands=unittest, **repos)),
        running_worker(kube, "review-box", namespace, {"agent": AgentExecutor},
                       executors=agent_settings(reviewers, tmp_path / "review", **repos)),
    ):  # fmt: skip
        await make_agent(kube, namespace, "fixer", model="scripted-model", tools=list(ToolsAll), gates=[UNITTEST],
                         review={"agentRef": "careful"})  # fmt: skip
        await make_agent(kube, namespace, "careful", model="careful-model", tools=["read_file", "submit_result"])
        await make_agent(kube, namespace, "mute", model="mute-model", tools=["read_file", "submit_result"], maxTurns=2)
        payload = {"prompt": "The tests fail. Fix the bug.", "repo": str(repository)}
        await make_task(kube, namespace, "reviewed", executor="agent", agentRef="fixer", payload=payload)
        await make_task(kube, namespace, "unverified", executor="agent", agentRef="fixer", payload=payload,
                        review={"agentRef": "mute"})  # fmt: skip
        go = await wait_for(kube, namespace, "reviewed", finished, timeout=90)
        no_go = await wait_for(kube, namespace, "unverified", finished, timeout=90)
        code, described, err = await foreman_cli(cluster, "describe", "task", "reviewed", "-n", namespace)
    assert (go.phase, go.status.verdict) == ("Succeeded", "GO"), go.status
    result = go.status.result
    assert result is not None
    assert result.review is not None
    assert (result.review.agent_ref, result.review.model, result.review.verdict, result.review.reasons) == (
        "careful", "careful-model", "GO", REASONS,
    )  # fmt: skip
    assert [(g.name, g.status) for g in result.gates] == [("unittest", "passed")]
    assert result.extra["changedFiles"] == ["calc.py"]
    assert result.summary.startswith("Fixed add() in calc.py")
    assert [(a.node, a.model, a.verdict) for a in go.status.attempt_history] == [
        ("coder-box", "scripted-model", "GO"), ("review-box", "careful-model", "GO"),
    ]  # fmt: skip
    assert go.status.attempts == 0  # the review spends no retry
    # the reviewer was shown the task, the agent's summary, the gates' results and the diff, and read the branch
    careful = [r for r in reviewers.requests if r["model"] == "careful-model"]
    assert careful[0]["messages"][0]["content"] == REVIEW_PROMPT  # the reviewer Agent has no systemPrompt
    shown = first_message(careful[0])
    for part in ("The tests fail. Fix the bug.", "Fixed add() in calc.py", "- unittest: passed (exit 0)",
                 "-    return a - b", "+    return a + b", "checkout of"):  # fmt: skip
        assert part in shown, shown
    read = next(m["content"] for m in careful[-1]["messages"] if m["role"] == "tool")
    assert "return a + b" in read  # the pushed branch, not the base
    assert code == 0, err
    assert f"Review:       GO by Agent careful (careful-model): {REASONS}" in described
    # a reviewer that never calls a tool could not verify: NO-GO, never GO
    assert (no_go.phase, no_go.status.verdict) == ("Succeeded", "NO-GO"), no_go.status
    said = no_go.status.result.review if no_go.status.result else None
    assert said is not None
    assert (said.agent_ref, said.verdict) == ("mute", "NO-GO")
    assert f"the reviewer could not verify (ended {reasons.NO_TOOL_CALL})" in said.reasons
    assert [a.verdict for a in no_go.status.attempt_history] == ["GO", "NO-GO"]


def splitter(request: dict[str, Any]) -> Reply:
    """The planner makes one child and answers GO; the child and the reviewer (`careful-model`) answer GO."""
    told = any(m["role"] == "tool" for m in request["messages"])
    if request["model"] == "careful-model":
        return Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": "the split is right"})])
    if "Split the work." in first_message(request) and not told:
        return Turn(calls=[Call("submit_task", {"agent": "fixer", "prompt": "Fix part 1."})])
    return Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": "done"})])


async def test_a_reviewed_tasks_envelope_lists_the_children_its_work_made(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The reviewer's finish writes the envelope; the children are the work's, carried through status.review."""
    async with (
        ScriptedLLM(splitter, models=["scripted-model", "careful-model"]) as llm, running_controller(kube, namespace),
        running_worker(kube, "split-box", namespace, {"agent": AgentExecutor}, executors=agent_settings(llm, tmp_path),
                       max_concurrent_tasks=2),
    ):  # fmt: skip
        await make_agent(kube, namespace, "planner", model="scripted-model", subtasks={"agents": ["fixer"]},
                         review={"agentRef": "careful"})  # fmt: skip
        await make_agent(kube, namespace, "fixer", model="scripted-model")
        await make_agent(kube, namespace, "careful", model="careful-model", tools=["submit_result"])
        await make_task(kube, namespace, "split", executor="agent", agentRef="planner",
                        payload={"prompt": "Split the work."})  # fmt: skip
        parent = await wait_for(kube, namespace, "split", finished, timeout=90)
    assert (parent.phase, parent.status.verdict) == ("Succeeded", "GO"), parent.status
    assert [a.model for a in parent.status.attempt_history] == ["scripted-model", "careful-model"]
    assert parent.status.children == ["split-1"]
    result = parent.status.result
    assert result is not None
    assert result.review is not None
    assert [c.name for c in result.children] == ["split-1"]
    assert result.children[0].phase is not None  # as it stood when the work ended, not a name alone
