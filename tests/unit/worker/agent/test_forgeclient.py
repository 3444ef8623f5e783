"""The worker's forge calls against a GitHub stand-in speaking its documented REST shapes (tests/servers/github.py):
create, update instead of a second, the 422 "already exists" race, 5xx and timeouts tried again, a refusal not."""

from __future__ import annotations

import pytest

from foreman.worker.agent import forge
from foreman.worker.agent.forge import ForgeSettings, Repository
from foreman.worker.agent.forgeclient import ForgeError, pull_request
from tests.servers.github import GitHub

TOKEN = "ghp_stand1n5ecret"
REPO = Repository("octo", "calc")


def settings(server: GitHub, **extra: object) -> ForgeSettings:
    return ForgeSettings.model_validate(
        {"kind": "github", "url": server.url, "tokenEnv": "T", "backoffSeconds": 0, "timeoutSeconds": 0.5, **extra}
    )


def wanted(summary: str = "Fixed add()", *, draft: bool = False) -> forge.Wanted:
    return forge.Wanted(head="foreman/fix-add", title=summary, body=f"**Verdict: GO**\n\n{summary}", draft=draft)


async def test_a_pull_request_is_created_with_the_documented_request() -> None:
    async with GitHub(TOKEN) as server:
        record = await pull_request(settings(server), TOKEN, REPO, wanted(draft=True))
    assert (record.number, record.draft, record.url) == (1, True, "https://github.com/octo/calc/pull/1")
    lookup, create = server.seen[1], server.seen[2]
    assert lookup.query == {"state": "open", "head": "octo:foreman/fix-add", "per_page": "100"}
    assert create.body == {"title": "Fixed add()", "body": "**Verdict: GO**\n\nFixed add()",
                           "head": "foreman/fix-add", "base": "main", "draft": True}  # fmt: skip
    assert create.headers["Authorization"] == f"Bearer {TOKEN}"
    assert create.headers["Accept"] == "application/vnd.github+json"
    assert create.headers["X-GitHub-Api-Version"] == "2022-11-28"


async def test_the_open_one_for_the_branch_is_updated_and_a_lost_race_too() -> None:
    async with GitHub(TOKEN) as server:
        first = await pull_request(settings(server), TOKEN, REPO, wanted())
        second = await pull_request(settings(server), TOKEN, REPO, wanted("Fixed add() again"))
        assert second == first
        assert [seen.method for seen in server.seen[-2:]] == ["GET", "PATCH"]
        assert server.pulls[0]["title"] == "Fixed add() again"
        # another worker's create landed between our look-up and ours: GitHub's 422, then the update
        server.pulls[0]["state"] = "closed"
        server.rival = "theirs"
        before = len(server.seen)
        raced = await pull_request(settings(server), TOKEN, REPO, wanted("mine"))
    assert raced.number == 2
    assert [seen.method for seen in server.seen[before:]] == ["GET", "GET", "POST", "GET", "PATCH"]
    assert [(pull["number"], pull["title"]) for pull in server.pulls if pull["state"] == "open"] == [(2, "mine")]


async def test_5xx_and_timeouts_are_tried_again() -> None:
    async with GitHub(TOKEN) as server:
        server.fail(502, times=2)
        server.fail(None)  # no answer within timeoutSeconds
        record = await pull_request(settings(server), TOKEN, REPO, wanted())
    assert record.number == 1
    assert len(server.seen) == 6  # three failed tries of the first call, then its answer, the look-up, the create


async def test_a_create_whose_answer_was_lost_is_not_made_twice() -> None:
    async with GitHub(TOKEN) as server:
        server.lose_create_answer = True
        record = await pull_request(settings(server), TOKEN, REPO, wanted())
    assert [seen.method for seen in server.seen] == ["GET", "GET", "POST", "POST", "GET"]
    assert [pull["number"] for pull in server.pulls] == [1]
    assert record.number == 1


async def test_a_forge_that_keeps_failing_says_so_after_its_attempts() -> None:
    async with GitHub(TOKEN) as server:
        server.fail(503, "Service Unavailable", times=10)
        with pytest.raises(ForgeError, match="answered 503: Service Unavailable") as failed:
            await pull_request(settings(server, attempts=3), TOKEN, REPO, wanted())
    assert len(server.seen) == 3
    assert failed.value.retryable


async def test_a_refusal_is_not_tried_again_and_never_carries_the_token() -> None:
    async with GitHub(TOKEN) as server:
        with pytest.raises(ForgeError, match="answered 401: Bad credentials"):
            await pull_request(settings(server), "wrong-token", REPO, wanted())
        assert len(server.seen) == 1
        server.fail(422, f"head {TOKEN} is invalid")  # a forge that echoes the token back
        with pytest.raises(ForgeError) as echoed:
            await pull_request(settings(server), TOKEN, REPO, wanted())
    assert TOKEN not in str(echoed.value)
    assert "head *** is invalid" in str(echoed.value)
