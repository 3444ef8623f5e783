"""The worker's calls to its forge (Gitea/Forgejo v1 REST, GitHub REST): find the pull request open for a branch,
create or update it as forge.plan says. Calls that another try can mend (5xx, 429, a timeout, a reset) are tried
again with backoff (tenacity); any other refusal is a ForgeError with the forge's own message. The token goes in a
header and nowhere else: no message of this module carries it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from foreman.api.models.pullrequests import PullRequestRecord
from foreman.worker.agent import forge
from foreman.worker.agent.forge import Create, ForgeSettings, Keep, PullRequest, Repository, Update, Wanted

PAGE = 50
PAGES = 20
"""Gitea lists open pull requests a page at a time, with no head filter: at most PAGES x PAGE are looked at."""
ALREADY_EXISTS = ("already exists", "pull request already exists")


class ForgeError(Exception):
    """The forge refused, or could not be reached after every try: the message says which and what it said."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable

    @property
    def exists(self) -> bool:
        """Gitea's 409 and GitHub's 422 for a pull request that is already open for the branch."""
        return self.status in (409, 422) and any(text in str(self).lower() for text in ALREADY_EXISTS)


def token_of(settings: ForgeSettings, environment: Mapping[str, str]) -> str:
    """The forge's token, from the variable or the file the worker's config names (never from a task)."""
    if settings.token_env is not None:
        token = environment.get(settings.token_env, "").strip()
        if not token:
            raise ForgeError(f"forge token: environment variable {settings.token_env} is not set")
        return token
    assert settings.token_file is not None
    try:
        token = Path(settings.token_file).read_text().strip().splitlines()[0].strip()
    except (OSError, IndexError, UnicodeDecodeError) as error:
        raise ForgeError(f"forge token: cannot read {settings.token_file}: {type(error).__name__}") from None
    if not token:
        raise ForgeError(f"forge token: {settings.token_file} is empty")
    return token


class ForgeClient:
    def __init__(self, settings: ForgeSettings, token: str, session: aiohttp.ClientSession):
        self.settings = settings
        self._token = token
        self._session = session

    def _headers(self) -> dict[str, str]:
        if self.settings.kind == "github":
            return {"Authorization": f"Bearer {self._token}", "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28"}  # fmt: skip
        return {"Authorization": f"token {self._token}", "Accept": "application/json"}

    async def call(self, method: str, path: str, *, body: Any = None, query: Mapping[str, str] | None = None) -> Any:
        """One REST call, tried again while the failure is one another try can mend."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.attempts),
            wait=wait_exponential(multiplier=self.settings.backoff_seconds, max=30),
            retry=retry_if_exception(lambda error: isinstance(error, ForgeError) and error.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(method, path, body, query)
        raise AssertionError("unreachable: tenacity reraises the last failure")

    async def _once(self, method: str, path: str, body: Any, query: Mapping[str, str] | None) -> Any:
        url = f"{self.settings.api}{path}"
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        what = f"{method} {path}"
        try:
            async with self._session.request(
                method, url, json=body, params=dict(query or {}), headers=self._headers(), timeout=timeout,
                allow_redirects=False,
            ) as answer:  # fmt: skip
                text = await answer.text(errors="replace")
                status = answer.status
        except TimeoutError:
            raise ForgeError(f"{what}: no answer within {self.settings.timeout_seconds:g} s", retryable=True) from None
        except aiohttp.ClientError as error:
            raise ForgeError(f"{what}: {type(error).__name__}: {error}", retryable=True) from None
        if status >= 400:
            message = forge.scrubbed(_message(text), self._token)
            retryable = status >= 500 or status == 429
            raise ForgeError(f"{what} answered {status}: {message}", status=status, retryable=retryable)
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ForgeError(f"{what} answered {status} with no JSON", status=status) from None

    async def default_branch(self, repo: Repository) -> str:
        answer = await self.call("GET", f"/repos/{repo.path}")
        branch = answer.get("default_branch") if isinstance(answer, dict) else None
        if not isinstance(branch, str) or not branch:
            raise ForgeError(f"the forge names no default branch for {repo.path}")
        return branch

    async def open_for(self, repo: Repository, head: str) -> PullRequest | None:
        """The pull request open for the branch (from the same repository), if any."""
        if self.settings.kind == "github":
            query = {"state": "open", "head": f"{repo.owner}:{head}", "per_page": "100"}
            listed = await self.call("GET", f"/repos/{repo.path}/pulls", query=query)
            return _head_of(listed, repo, head)
        for page in range(1, PAGES + 1):
            query = {"state": "open", "limit": str(PAGE), "page": str(page)}
            listed = await self.call("GET", f"/repos/{repo.path}/pulls", query=query)
            found = _head_of(listed, repo, head)
            if found is not None or len(listed or []) < PAGE:
                return found
        return None

    async def create(self, repo: Repository, wanted: Wanted) -> PullRequestRecord:
        assert wanted.base is not None
        body: dict[str, Any] = {"title": wanted.title, "body": wanted.body, "head": wanted.head, "base": wanted.base}
        if self.settings.kind == "github":
            body["draft"] = wanted.draft
        return _record(await self.call("POST", f"/repos/{repo.path}/pulls", body=body))

    async def update(self, repo: Repository, update: Update) -> PullRequestRecord:
        body = {"title": update.title, "body": update.body}
        return _record(await self.call("PATCH", f"/repos/{repo.path}/pulls/{update.number}", body=body))


async def publish(client: ForgeClient, repo: Repository, wanted: Wanted) -> PullRequestRecord:
    """The task's pull request, opened or updated: looked up by its head branch first, so a retry or a restarted
    worker updates the one it opened; a create that lost a race to another one's is turned into an update."""
    if wanted.base is None:
        wanted = replace(wanted, base=await client.default_branch(repo))
    action = forge.plan(wanted, await client.open_for(repo, wanted.head))
    if isinstance(action, str):
        raise ForgeError(action)
    if isinstance(action, Keep):
        return _kept(action.found)
    if isinstance(action, Update):
        return await client.update(repo, action)
    assert isinstance(action, Create)
    try:
        return await client.create(repo, wanted)
    except ForgeError as error:
        if not error.exists:
            raise
    again = forge.plan(wanted, await client.open_for(repo, wanted.head))
    if isinstance(again, str):
        raise ForgeError(again)
    if isinstance(again, Create):
        raise ForgeError(f"the forge says a pull request for {wanted.head} exists but lists none open")
    if isinstance(again, Keep):
        return _kept(again.found)
    return await client.update(repo, again)


async def pull_request(settings: ForgeSettings, token: str, repo: Repository, wanted: Wanted) -> PullRequestRecord:
    """publish() on a session of its own (a task opens one pull request: no pool worth keeping between tasks)."""
    async with aiohttp.ClientSession() as session:
        return await publish(ForgeClient(settings, token, session), repo, wanted)


def _head_of(listed: Any, repo: Repository, head: str) -> PullRequest | None:
    pulls = [pull for pull in listed if isinstance(pull, dict)] if isinstance(listed, list) else []
    return next((_parsed(pull) for pull in pulls if _is_head(pull, repo, head)), None)


def _is_head(pull: Mapping[str, Any], repo: Repository, head: str) -> bool:
    info = pull.get("head") or {}
    source = (info.get("repo") or {}).get("full_name")
    return info.get("ref") == head and (source is None or str(source).lower() == repo.path.lower())


def _record(answer: Any) -> PullRequestRecord:
    return _kept(_parsed(answer))


def _kept(pull: PullRequest) -> PullRequestRecord:
    return PullRequestRecord(url=pull.url, number=pull.number, draft=pull.draft)


def _parsed(answer: Any) -> PullRequest:
    if not isinstance(answer, dict) or not isinstance(answer.get("number"), int):
        raise ForgeError("the forge answered a pull request without a number")
    return PullRequest(
        number=answer["number"], url=str(answer.get("html_url") or answer.get("url") or ""),
        title=str(answer.get("title") or ""), body=str(answer.get("body") or ""), draft=bool(answer.get("draft")),
    )  # fmt: skip


def _message(text: str) -> str:
    """The forge's own words: GitHub's `message` and `errors[].message`, Gitea's `message`; else the text, cut."""
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:500] or "(no body)"
    if not isinstance(answer, dict):
        return text.strip()[:500]
    parts = [str(answer.get("message") or "")]
    for error in answer.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
        elif isinstance(error, str):
            parts.append(error)
    return "; ".join(part for part in parts if part)[:500] or text.strip()[:500]
