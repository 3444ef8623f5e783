"""The forge's decisions as pure functions: the repository a remote names, when a verdict asks for a pull request,
what it says, and whether it is created, updated or left be."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from foreman.api.models.agents import AgentSpec
from foreman.api.models.envelope import ReviewRecord, Usage
from foreman.api.models.gates import GateResult
from foreman.api.models.pullrequests import PullRequestPolicy
from foreman.api.models.tasks import AgenticTask
from foreman.worker.agent import forge
from foreman.worker.agent.forge import Create, ForgeSettings, Keep, PullRequest, Repository, Update
from foreman.worker.agent.forgeclient import ForgeError, token_of
from foreman.worker.executors.agent import AgentExecutorSettings

GITEA = ForgeSettings(kind="gitea", url="https://gitea.example/", token_env="T")
GITHUB = ForgeSettings(kind="github", token_file="/etc/foreman/github-token")


@pytest.mark.parametrize(
    ("settings", "remote", "expected"),
    [
        (GITEA, "https://gitea.example/team/calc.git", Repository("team", "calc")),
        (GITEA, "https://gitea.example/team/calc", Repository("team", "calc")),
        (GITEA, "ssh://git@gitea.example:2222/team/calc.git", Repository("team", "calc")),
        (GITEA, "git@gitea.example:team/calc.git", Repository("team", "calc")),
        (GITHUB, "https://github.com/octo/calc.git", Repository("octo", "calc")),
        (GITHUB, "git@github.com:octo/calc.git", Repository("octo", "calc")),
    ],
)
def test_a_remote_names_its_owner_and_repository_on_the_forge(
    settings: ForgeSettings, remote: str, expected: Repository
) -> None:
    assert forge.repository_on(settings, remote) == expected


@pytest.mark.parametrize(
    ("remote", "why"),
    [
        ("https://alice:s3cret@gitea.example/team/calc.git", "must not carry credentials"),
        ("https://s3cret@gitea.example/team/calc.git", "must not carry credentials"),
        ("https://elsewhere.example/team/calc.git", "not on the worker's forge"),
        ("https://gitea.example/calc.git", "does not name an owner"),
        ("/srv/repos/calc", "not a URL"),
        ("https://gitea.example/team/ca$lc", "does not name an owner"),
    ],
)
def test_a_remote_the_forge_cannot_serve_says_why(remote: str, why: str) -> None:
    refused = forge.repository_on(GITEA, remote)
    assert isinstance(refused, str)
    assert why in refused
    assert "s3cret" not in refused


def test_a_forge_wants_exactly_one_token_source_and_gitea_its_url() -> None:
    with pytest.raises(ValidationError, match="exactly one of tokenEnv and tokenFile"):
        ForgeSettings(kind="github")
    with pytest.raises(ValidationError, match="exactly one of tokenEnv and tokenFile"):
        ForgeSettings(kind="github", token_env="A", token_file="/b")
    with pytest.raises(ValidationError, match="needs its url"):
        ForgeSettings(kind="gitea", token_env="A")
    with pytest.raises(ValidationError, match="url"):
        ForgeSettings.model_validate({"kind": "gitea", "url": "https://bot:pw@gitea.example", "tokenEnv": "A"})
    assert GITEA.api == "https://gitea.example/api/v1"
    assert GITHUB.api == "https://api.github.com"


def test_the_token_comes_from_the_variable_or_the_file_the_config_names(tmp_path: Path) -> None:
    assert token_of(GITEA, {"T": " abc \n"}) == "abc"
    with pytest.raises(ForgeError, match="T is not set"):
        token_of(GITEA, {})
    (tmp_path / "token").write_text("xyz\nignored\n")
    assert token_of(ForgeSettings(kind="github", token_file=str(tmp_path / "token")), {}) == "xyz"
    with pytest.raises(ForgeError, match="cannot read"):
        token_of(ForgeSettings(kind="github", token_file=str(tmp_path / "missing")), {})


def test_git_gets_the_token_from_its_environment_for_the_forge_s_host_only() -> None:
    assert list(forge.git_credentials(GITEA)) == ["credential.https://gitea.example.helper"]
    assert list(forge.git_credentials(GITHUB)) == ["credential.https://github.com.helper"]
    enterprise = ForgeSettings(kind="github", url="https://ghe.example/api/v3", token_env="T")
    assert list(forge.git_credentials(enterprise)) == ["credential.https://ghe.example.helper"]
    assert "$FOREMAN_FORGE_TOKEN" in forge.CREDENTIAL_HELPER


def test_no_read_only_path_may_show_the_token_file_to_the_agent_s_commands() -> None:
    forge_settings = {"kind": "github", "tokenFile": "/srv/foreman/secrets/forge-token"}
    for shown in ("/srv/foreman", "/srv/foreman/secrets/", "/srv/foreman/secrets/forge-token"):
        with pytest.raises(ValidationError, match="would show the forge's tokenFile"):
            AgentExecutorSettings.model_validate({"forge": forge_settings, "readOnlyPaths": ["/opt/tools", shown]})
    fine = AgentExecutorSettings.model_validate({"forge": forge_settings, "readOnlyPaths": ["/srv/foreman/tools"]})
    assert fine.forge is not None


policies = st.builds(
    PullRequestPolicy, on_go=st.sampled_from([None, "open", "none"]), on_fail=st.sampled_from([None, "draft", "none"])
)


@given(task=policies, agent=st.none() | policies)
def test_a_task_s_policy_wins_field_by_field_over_its_agent_s(
    task: PullRequestPolicy, agent: PullRequestPolicy | None
) -> None:
    merged = task.over(agent)
    below = agent or PullRequestPolicy()
    assert merged.on_go == (task.on_go if task.on_go is not None else below.on_go)
    assert merged.on_fail == (task.on_fail if task.on_fail is not None else below.on_fail)


def test_which_verdicts_ask_for_which_pull_request() -> None:
    default = PullRequestPolicy()
    assert [default.wants(v) for v in ("GO", "NO-GO", "GATE-FAIL", "INCOMPLETE")] == ["open", None, None, None]
    drafts = PullRequestPolicy(on_go="none", on_fail="draft")
    assert [drafts.wants(v) for v in ("GO", "NO-GO", "GATE-FAIL", "INCOMPLETE")] == [None, "draft", "draft", None]
    task = AgenticTask.model_validate(
        {"metadata": {"name": "t"}, "spec": {"kind": "issue-fix", "pullRequest": {"onFail": "draft"}}}
    )
    agent = AgentSpec.model_validate({"pullRequest": {"onGo": "none", "onFail": "none"}})
    assert task.pull_request_with(agent) == PullRequestPolicy(on_go="none", on_fail="draft")
    assert task.pull_request_with(None) == PullRequestPolicy(on_fail="draft")


def report(summary: str = "Fixed add()\n\nIt subtracted.", verdict: str = "GO") -> forge.Report:
    task = AgenticTask.model_validate(
        {"metadata": {"name": "fix-add", "namespace": "team"}, "spec": {"kind": "issue-fix"}}
    )
    usage = Usage(prompt_tokens=500, completion_tokens=50, total_tokens=550, turns=5, tool_calls=5, model="m")
    return forge.Report(task=task, verdict=verdict, summary=summary, usage=usage, models=("m",),
                        changed_files=("calc.py",), commit="abc123")  # fmt: skip


def test_the_pull_request_says_verdict_summary_usage_models_and_how_to_see_the_transcript() -> None:
    wanted = forge.wanted("github", report(), head="foreman/fix-add", draft=False)
    assert wanted.title == "Fixed add()"
    for said in ("**Verdict: GO**", "It subtracted.", "`m`", "5 turns", "500 prompt + 50 completion tokens",
                 "`calc.py`", "abc123", "`foreman logs fix-add -n team`"):  # fmt: skip
        assert said in wanted.body
    huge = forge.wanted("github", report("x" * 100_000), head="b", draft=False)
    assert len(huge.body) <= forge.BODY_LIMIT
    assert huge.body.endswith("-->")  # the summary is cut, never the rest


def test_the_pull_request_lists_each_verify_gate_and_the_fix_rounds() -> None:
    gates = (
        GateResult(name="tests", status="passed", exit_status=0, seconds=2.5),
        GateResult(name="lint", status="failed", exit_status=1, seconds=0.4),
        GateResult(name="types", status="notRun"),
    )
    with_gates = dataclasses.replace(report(verdict="GATE-FAIL"), gates=gates, fix_rounds=2)
    body = forge.wanted("gitea", with_gates, head="b", draft=True).body
    assert "- Verify gates after 2 fix rounds:" in body
    assert "  - `tests`: passed, exit 0 (2.5 s)" in body
    assert "  - `lint`: failed, exit 1 (0.4 s)" in body
    assert "  - `types`: notRun (0.0 s)" in body
    assert "Verify gates" not in forge.wanted("gitea", report(), head="b", draft=False).body


def test_a_gitea_draft_is_its_wip_title_and_a_ready_one_never_starts_so() -> None:
    draft = forge.wanted("gitea", report(verdict="NO-GO"), head="b", draft=True)
    assert (draft.title, draft.draft) == ("WIP: Fixed add()", True)
    sneaky = forge.wanted("gitea", report("[WIP] WIP: done"), head="b", draft=False)
    assert sneaky.title == "done"
    on_github = forge.wanted("github", report(verdict="NO-GO"), head="b", draft=True)
    assert (on_github.title, on_github.draft) == ("Fixed add()", True)


def test_an_open_pull_request_for_the_branch_is_updated_never_doubled() -> None:
    wanted = forge.wanted("gitea", report(), head="foreman/fix-add", draft=False, base="main")
    assert forge.plan(wanted, None) == Create(wanted)
    same = PullRequest(7, "https://gitea.example/team/calc/pulls/7", wanted.title, wanted.body, False)
    assert forge.plan(wanted, same) == Keep(same)
    stale = PullRequest(7, same.url, "old", "old body", False)
    assert forge.plan(wanted, stale) == Update(7, wanted.title, wanted.body)
    onto_itself = forge.wanted("gitea", report(), head="main", draft=False, base="main")
    assert "is the branch it would merge into" in str(forge.plan(onto_itself, None))


def test_the_pull_request_sums_every_attempts_usage_and_names_the_review() -> None:
    small = Usage(prompt_tokens=100, completion_tokens=10, total_tokens=110, turns=2, tool_calls=2, model="small")
    large = Usage(prompt_tokens=300, completion_tokens=30, total_tokens=330, turns=5, tool_calls=5, model="large",
                  estimated=True, cached_prompt_tokens=40)  # fmt: skip
    total = forge.total_usage([small, large])
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens, total.turns, total.tool_calls) == (
        400, 40, 440, 7, 7,
    )  # fmt: skip
    assert (total.model, total.estimated, total.cached_prompt_tokens) == ("large", True, 40)
    assert forge.total_usage([small]).cached_prompt_tokens is None
    reviewed = dataclasses.replace(
        report(), usage=total, models=("small", "large", "judge"),
        review=ReviewRecord(agent_ref="reviewer", model="judge", verdict="GO", reasons="right"),
    )  # fmt: skip
    body = forge.wanted("gitea", reviewed, head="b", draft=False).body
    assert "- Models: `small`, `large`, `judge`" in body
    assert "7 turns, 7 tool calls, 400 prompt + 40 completion tokens (partly estimated)" in body
    assert "- Review by Agent `reviewer` (judge): GO" in body


@pytest.mark.parametrize(
    ("verdict", "reviewed", "escalates", "asked"),
    [
        ("GO", False, False, "open"),
        ("GO", True, False, None),  # the reviewer's answer decides
        ("GATE-FAIL", False, False, "draft"),  # the ladder's last attempt
        ("GATE-FAIL", False, True, None),  # the next model takes over from the base commit
        ("INCOMPLETE", False, True, None),
        ("NO-GO", False, False, "draft"),
    ],
)
def test_what_an_attempts_end_asks_of_the_forge(
    verdict: str, reviewed: bool, escalates: bool, asked: str | None
) -> None:
    policy = PullRequestPolicy(on_go="open", on_fail="draft")
    assert forge.asked(policy, verdict, reviewed=reviewed, escalates=escalates) == asked
    assert (
        forge.asked(PullRequestPolicy(on_go="none", on_fail="none"), verdict, reviewed=False, escalates=False) is None
    )
