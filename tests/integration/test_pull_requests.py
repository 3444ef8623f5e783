"""Pull requests on a real forge: a whole agent task (the real apiserver, controller and worker, a scripted model
server) from a repository on a real Gitea (foreman.api.tooling.gitea, `make gitea`) to its pull request, read back
through Gitea's own API. The worker's token reaches Gitea and nothing else: not the envelope, not the transcript,
not the logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foreman.api.http.client import Kube
from foreman.api.http.errors import NotFound
from foreman.api.models import transcript
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling import gitea
from foreman.api.tooling.scripted_llm import Call, Reply, ScriptedLLM, Turn, demo_repository, demo_script
from foreman.worker.executors.agent import AgentExecutor
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, make_task, running_controller, running_worker, wait_for
from tests.integration.test_agent import ToolsAll, finished, git, make_agent
from tests.integration.test_escalation import first_message
from tests.integration.test_gates import UNITTEST

pytestmark = [
    pytest.mark.gitea,
    pytest.mark.skipif(gitea.missing() is not None, reason=gitea.missing() or ""),
]


@pytest.fixture(scope="module")
def forge() -> Iterator[gitea.Gitea]:
    with gitea.running() as running:
        yield running


def hosted(forge: gitea.Gitea, tmp_path: Path, name: str) -> str:
    """The demo repository (one failing test) on a new private Gitea repository; its clone URL."""
    return forge.hosted(name, demo_repository(tmp_path / name))


def worker_settings(forge: gitea.Gitea, llm: ScriptedLLM, tmp_path: Path) -> dict[str, dict[str, Any]]:
    token_file = tmp_path / "gitea-token"
    token_file.write_text(forge.token + "\n")
    return {
        "agent": {
            "endpoint": llm.base_url, "workspaceRoot": str(tmp_path / "workspaces"), "push": True,
            "allowCommands": [["python3", "-m", "unittest"]], "allowRepos": [f"{forge.url}/"],
            "forge": {"kind": "gitea", "url": forge.url, "tokenFile": str(token_file), "backoffSeconds": 0},
        }
    }  # fmt: skip


def gives_up(summary: str) -> Any:
    """A model that looks at its commands' environment, writes a note, then answers NO-GO."""

    def reply(request: dict[str, Any]) -> Reply:
        done = sum(1 for m in request.get("messages", []) if m.get("role") == "tool")
        if done == 0:
            return Turn("What can my commands see?", calls=[Call("run", {"argv": ["env"]})])
        if done == 1:
            return Turn("Writing what I found.", calls=[Call("write_file", {"path": "NOTES.md", "content": summary})])
        return Turn(calls=[Call("submit_result", {"verdict": "NO-GO", "summary": summary})])

    return reply


async def deleted(kube: Kube, namespace: str, name: str) -> None:
    for _ in range(1500):
        try:
            await kube.get(AgenticTask, name, namespace)
        except NotFound:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} was never deleted")


async def run_task(kube: Kube, namespace: str, name: str, repo: str, **spec: Any) -> AgenticTask:
    await make_task(kube, namespace, name, executor="agent", agentRef="fixer",
                    payload={"prompt": "The tests fail. Fix the bug.", "repo": repo}, **spec)  # fmt: skip
    return await wait_for(kube, namespace, name, finished, timeout=90)


async def test_a_go_opens_a_pull_request_and_a_second_run_updates_it(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path, forge: gitea.Gitea,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    repo = hosted(forge, tmp_path, f"calc-{namespace}")
    name = repo.rsplit("/", 1)[-1].removesuffix(".git")
    async with (
        ScriptedLLM(demo_script) as llm, running_controller(kube, namespace),
        running_worker(kube, "forge-box", namespace, {"agent": AgentExecutor},
                       executors=worker_settings(forge, llm, tmp_path)),
    ):  # fmt: skip
        await make_agent(kube, namespace, "fixer", model="scripted-model", tools=list(ToolsAll))
        first = await run_task(kube, namespace, "fix-add", repo)
        assert first.status.verdict == "GO", first.status
        result = first.status.result
        assert result is not None
        assert result.pull_request is not None, result.extra
        assert result.failure_reason is None
        record = result.pull_request
        pulls = forge.pulls(name)
        assert [pull["number"] for pull in pulls] == [record.number]
        pull = pulls[0]
        assert (pull["state"], pull["draft"], pull["head"]["ref"], pull["base"]["ref"]) == (
            "open", False, "foreman/fix-add", "main"
        )  # fmt: skip
        assert pull["title"] == "Fixed add() in calc.py: it subtracted; the tests pass now."
        assert "**Verdict: GO**" in pull["body"]
        assert f"foreman logs fix-add -n {namespace}" in pull["body"]
        assert "`scripted-model`" in pull["body"]
        assert "5 turns" in pull["body"]
        assert record.url == pull["html_url"]
        assert record.draft is False
        changed = forge.api("GET", f"/repos/{forge.user}/{name}/pulls/{record.number}/files")
        assert [entry["filename"] for entry in changed] == ["calc.py"]
        code, out, err = await foreman_cli(cluster, "describe", "task", "fix-add", "-n", namespace)
        assert code == 0, err
        assert f"Pull request: {record.url}" in out

        # the same task again (deleted and made anew): the branch's pull request is updated, never a second
        await kube.delete(AgenticTask, "fix-add", namespace)
        await deleted(kube, namespace, "fix-add")
        again = await run_task(kube, namespace, "fix-add", repo)
        assert again.status.result is not None
        assert again.status.result.pull_request == record
        assert [pull["number"] for pull in forge.pulls(name)] == [record.number]
        stored = await kube.get_raw("v1", "ConfigMap", transcript.configmap_name("fix-add"), namespace)
    said = capsys.readouterr()
    assert forge.token not in said.out + said.err
    assert forge.token not in json.dumps(again.to_wire()) + json.dumps(first.to_wire())
    assert forge.token not in json.dumps(stored)
    assert '"event":"pullRequest"' in stored["data"][transcript.KEY]


async def test_a_no_go_opens_a_draft_when_on_fail_says_draft(
    kube: Kube, namespace: str, tmp_path: Path, forge: gitea.Gitea, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token from the worker's environment this time (tokenEnv): the agent's commands do not see it."""
    repo = hosted(forge, tmp_path, f"notes-{namespace}")
    name = repo.rsplit("/", 1)[-1].removesuffix(".git")
    monkeypatch.setenv("FOREMAN_TEST_GITEA_TOKEN", forge.token)
    async with ScriptedLLM(gives_up("Cannot fix: the test itself is wrong.")) as llm:
        settings = worker_settings(forge, llm, tmp_path)
        settings["agent"]["forge"] |= {"tokenEnv": "FOREMAN_TEST_GITEA_TOKEN", "tokenFile": None}
        settings["agent"]["allowCommands"] = [["env"]]
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "draft-box", namespace, {"agent": AgentExecutor}, executors=settings),
        ):
            await make_agent(kube, namespace, "fixer", model="scripted-model", tools=list(ToolsAll),
                             pullRequest={"onFail": "none"})  # fmt: skip
            quiet = await run_task(kube, namespace, "give-up", repo)
            drafted = await run_task(kube, namespace, "give-up-draft", repo, pullRequest={"onFail": "draft"})
            stored = await kube.get_raw("v1", "ConfigMap", transcript.configmap_name("give-up-draft"), namespace)
    said = stored["data"][transcript.KEY]
    assert "HOME=" in said  # the env command ran and its output is in the transcript...
    assert forge.token not in said  # ...without the token the worker holds in its environment
    assert quiet.status.verdict == "NO-GO"
    assert quiet.status.result is not None
    assert quiet.status.result.pull_request is None
    assert "branch" not in quiet.status.result.extra  # NO-GO without a draft: nothing committed or pushed
    assert drafted.status.verdict == "NO-GO"
    result = drafted.status.result
    assert result is not None
    assert result.pull_request is not None, result.extra
    assert result.pull_request.draft is True
    pulls = forge.pulls(name)
    assert len(pulls) == 1
    assert (pulls[0]["draft"], pulls[0]["head"]["ref"]) == (True, "foreman/give-up-draft")
    assert pulls[0]["title"] == "WIP: Cannot fix: the test itself is wrong."
    assert "**Verdict: NO-GO**" in pulls[0]["body"]


async def test_a_forge_that_refuses_fails_the_pull_request_and_keeps_the_branch(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path, forge: gitea.Gitea
) -> None:
    """A forge whose API refuses (here: a URL where Gitea answers 404; git pushes with credentials of its own): the
    outcome says PullRequestFailed with the forge's message; the pushed branch is there."""
    repo = hosted(forge, tmp_path, f"refused-{namespace}")
    name = repo.rsplit("/", 1)[-1].removesuffix(".git")
    async with ScriptedLLM(demo_script) as llm:
        settings = worker_settings(forge, llm, tmp_path)
        settings["agent"]["forge"]["url"] = f"{forge.url}/nowhere"  # its API answers 404 there
        settings["agent"]["gitConfig"] = {f"http.{forge.url}/.extraHeader": f"Authorization: token {forge.token}"}
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "refused-box", namespace, {"agent": AgentExecutor}, executors=settings),
        ):
            await make_agent(kube, namespace, "fixer", model="scripted-model", tools=list(ToolsAll))
            task = await run_task(kube, namespace, "fix-refused", repo)
    result = task.status.result
    assert result is not None
    assert (task.status.verdict, result.failure_reason, result.pull_request) == ("GO", "PullRequestFailed", None)
    assert "404" in result.extra["pullRequestError"], result.extra
    branches = [branch["name"] for branch in forge.api("GET", f"/repos/{forge.user}/{name}/branches")]
    assert "foreman/fix-refused" in branches
    assert forge.pulls(name) == []
    code, out, err = await foreman_cli(cluster, "describe", "task", "fix-refused", "-n", namespace)
    assert code == 0, err
    assert "Pull request: failed: GET /repos/" in out
    assert "answered 404" in out


async def test_a_repository_off_the_forge_gets_no_pull_request_and_no_failure(
    kube: Kube, namespace: str, tmp_path: Path, forge: gitea.Gitea
) -> None:
    local = demo_repository(tmp_path / "local-calc")
    async with ScriptedLLM(demo_script) as llm:
        settings = worker_settings(forge, llm, tmp_path)
        settings["agent"]["allowRepos"] = [str(local)]
        async with (
            running_controller(kube, namespace),
            running_worker(kube, "local-box", namespace, {"agent": AgentExecutor}, executors=settings),
        ):
            await make_agent(kube, namespace, "fixer", model="scripted-model", tools=list(ToolsAll))
            task = await run_task(kube, namespace, "fix-local", str(local))
    result = task.status.result
    assert result is not None
    assert (task.status.verdict, result.failure_reason, result.pull_request) == ("GO", None, None)
    assert git(local, "rev-parse", "foreman/fix-local").strip() == result.extra["commit"]


def whole_flow(request: dict[str, Any]) -> Reply:
    """`small` reads calc.py and answers GO without a fix, each round; `large` fixes it (the demo script);
    `reviewer-model` reads the change and answers GO with its reasons."""
    read = any(m.get("role") == "tool" for m in request["messages"])
    if request["model"] == "large":
        return demo_script(request)
    if request["model"] == "small":
        if not read:
            return Turn("Reading calc.py.", calls=[Call("read_file", {"path": "calc.py"})])
        return Turn("It looks right to me.", calls=[Call("submit_result", {"verdict": "GO", "summary": "No bug."})])
    if not read:
        return Turn("Reading the change.", calls=[Call("read_file", {"path": "calc.py"})])
    reasons = "add() returns a + b now and the unittest gate passed; the change is minimal."
    return Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": reasons})])


async def test_gates_a_fix_round_escalation_and_a_review_end_in_one_pull_request(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path, forge: gitea.Gitea
) -> None:
    """The whole flow on the real Gitea: the small model's GO fails the gate, its fix round too (GATE-FAIL), the
    task escalates to the large model, which fixes the bug; the gates pass, the reviewer answers GO, and only then
    the pull request opens, naming every model tried and the review."""
    repo = hosted(forge, tmp_path, f"flow-{namespace}")
    name = repo.rsplit("/", 1)[-1].removesuffix(".git")
    async with (
        ScriptedLLM(whole_flow, models=["small", "large", "reviewer-model"]) as llm,
        running_controller(kube, namespace),
        running_worker(kube, "flow-box", namespace, {"agent": AgentExecutor},
                       executors=worker_settings(forge, llm, tmp_path)),
    ):  # fmt: skip
        await make_agent(kube, namespace, "fixer", tools=list(ToolsAll), escalation=["small", "large"],
                         maxFixRounds=1, review={"agentRef": "reviewer"}, gates=[UNITTEST])  # fmt: skip
        await make_agent(kube, namespace, "reviewer", model="reviewer-model", tools=["read_file", "submit_result"])
        task = await run_task(kube, namespace, "flow", repo)
        logs = [await foreman_cli(cluster, "logs", "flow", "-n", namespace, "--attempt", str(n), "--width", "90")
                for n in (1, 2, 3)]  # fmt: skip
    assert (task.phase, task.status.verdict) == ("Succeeded", "GO"), task.status
    assert [(a.model, a.outcome, a.verdict) for a in task.status.attempt_history] == [
        ("small", "Escalated", "GATE-FAIL"), ("large", "Completed", "GO"), ("reviewer-model", "Completed", "GO"),
    ]  # fmt: skip
    result = task.status.result
    assert result is not None
    assert result.review is not None
    assert (result.review.agent_ref, result.review.verdict) == ("reviewer", "GO")
    assert result.pull_request is not None
    [pull] = forge.pulls(name)
    assert (pull["number"], pull["draft"], pull["head"]["ref"]) == (result.pull_request.number, False, "foreman/flow")
    assert "- Models: `small`, `large`, `reviewer-model`" in pull["body"]
    assert "- Review by Agent `reviewer` (reviewer-model): GO" in pull["body"]
    assert "`unittest`: passed" in pull["body"]
    for code, _, err in logs:
        assert code == 0, err
    small, large, review = (out for _, out, _ in logs)
    assert "gate   unittest: failed (exit 1" in small
    assert "end    GATE-FAIL (GateFailed)" in small
    told = first_message(next(r for r in llm.requests if r["model"] == "large"))
    assert "Attempt 1 with model small ended GATE-FAIL (GateFailed)" in told
    assert "gate   unittest: passed (exit 0" in large
    assert "review GO: add() returns a + b now" in review
    shown = first_message(next(r for r in llm.requests if r["model"] == "reviewer-model"))
    assert "A previous attempt" not in shown  # the reviewer judges the work, not the ladder
    assert f"pr     {result.pull_request.url}" in review
    assert forge.token not in json.dumps(task.to_wire()) + small + large + review
    print(*(out for _, out, _ in logs), sep="\n----\n")  # NB: the README's transcript excerpt comes from this run


async def test_a_review_that_cannot_verify_drafts_as_on_fail_says_and_opens_no_ready_pull_request(
    kube: Kube, namespace: str, tmp_path: Path, forge: gitea.Gitea
) -> None:
    """The agent's GO passed its gates, but its reviewer never calls a tool: NO-GO, and with `onFail: draft` the
    pushed branch gets a draft pull request (never the ready one the GO alone would have opened)."""
    repo = hosted(forge, tmp_path, f"unreviewed-{namespace}")
    name = repo.rsplit("/", 1)[-1].removesuffix(".git")

    def model(request: dict[str, Any]) -> Reply:
        return demo_script(request) if request["model"] == "scripted-model" else Turn(content="Fine by me.")

    async with (
        ScriptedLLM(model, models=["scripted-model", "mute-model"]) as llm,
        running_controller(kube, namespace),
        running_worker(kube, "unreviewed-box", namespace, {"agent": AgentExecutor},
                       executors=worker_settings(forge, llm, tmp_path)),
    ):  # fmt: skip
        await make_agent(kube, namespace, "fixer", model="scripted-model", tools=list(ToolsAll), gates=[UNITTEST],
                         review={"agentRef": "mute"}, pullRequest={"onFail": "draft"})  # fmt: skip
        await make_agent(kube, namespace, "mute", model="mute-model", tools=["read_file", "submit_result"], maxTurns=2)
        task = await run_task(kube, namespace, "unreviewed", repo)
    assert (task.phase, task.status.verdict) == ("Succeeded", "NO-GO"), task.status
    result = task.status.result
    assert result is not None
    assert result.review is not None
    assert result.review.verdict == "NO-GO"
    assert result.pull_request is not None
    assert result.pull_request.draft is True
    [pull] = forge.pulls(name)
    assert (pull["draft"], pull["head"]["ref"]) == (True, "foreman/unreviewed")
    assert "**Verdict: NO-GO**" in pull["body"]
    assert "- Review by Agent `mute` (mute-model): NO-GO" in pull["body"]
