"""Pull requests on the worker's forge, decided as pure functions: which repository a remote URL names on it, what
the pull request says (title, body, draft), and whether to create one, update the one open for the branch, or leave
it be. The HTTP is in forgeclient.py; this module does no I/O.

Credentials come only from the worker's config (`tokenEnv` or `tokenFile`), never from a task or an Agent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from foreman.api.models.base import Model
from foreman.api.models.envelope import ReviewRecord, Usage
from foreman.api.models.gates import GateResult
from foreman.api.models.pullrequests import PullRequestPolicy
from foreman.api.models.tasks import AgenticTask

GITHUB_API = "https://api.github.com"
DRAFT_PREFIX = "WIP: "
"""Gitea and Forgejo have no draft flag: a title starting with `WIP:` or `[WIP]` is what makes a pull request a
draft there (setting `[repository.pull-request] WORK_IN_PROGRESS_PREFIXES`, these two by default)."""
WIP_PREFIXES = ("WIP:", "[WIP]")
TITLE_LIMIT = 200
BODY_LIMIT = 60000
"""GitHub refuses a body over 65,536 characters; the summary is cut to keep the rest of the body."""


class ForgeSettings(Model):
    """`executors.agent.forge` in the worker's config: where its pull requests go and the token it opens them with."""

    model_config = Model.model_config | {"extra": "forbid"}

    kind: Literal["gitea", "github"]
    """`gitea` (Forgejo too: the same v1 API) or `github`."""
    url: str | None = Field(default=None, pattern=r"^https?://[^/@\s]+(/[^@\s]*)?$")
    """The forge's root: Gitea's web URL (its API is under /api/v1), GitHub's API URL (default
    https://api.github.com; GitHub Enterprise: https://HOST/api/v3). Never with credentials in it."""
    token_env: str | None = Field(default=None, min_length=1)
    """Name of the environment variable that holds the token."""
    token_file: str | None = Field(default=None, min_length=1)
    """A file that holds the token (its first line)."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    """Each call to the forge; a call that times out is tried again."""
    attempts: int = Field(default=4, ge=1, le=20)
    """Tries of a call that failed in a way another try can mend (5xx, 429, a timeout, a reset)."""
    backoff_seconds: float = Field(default=1.0, ge=0)
    """Wait before the second try; doubled before each further one."""

    @model_validator(mode="after")
    def _one_token(self) -> Self:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("forge: give exactly one of tokenEnv and tokenFile")
        if self.kind == "gitea" and self.url is None:
            raise ValueError("forge: a gitea forge needs its url")
        return self

    @property
    def root(self) -> str:
        return (self.url or GITHUB_API).rstrip("/")

    @property
    def api(self) -> str:
        """Base URL of the REST API."""
        return f"{self.root}/api/v1" if self.kind == "gitea" else self.root


@dataclass(frozen=True)
class Repository:
    owner: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.owner}/{self.name}"


SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def repository_on(forge: ForgeSettings, remote: str) -> Repository | str:
    """The repository a remote URL (https://, ssh://, or git@host:owner/name) names on the forge, or why it names
    none there (another host, a path that is not owner/name, credentials in the URL)."""
    scp = re.fullmatch(r"([A-Za-z0-9_.-]+)@([A-Za-z0-9_.-]+):(?!/)(.+)", remote)
    if scp:
        host, path = scp.group(2), scp.group(3)
    else:
        parts = urlsplit(remote)
        if parts.scheme not in ("http", "https", "ssh", "git") or not parts.hostname:
            return f"repository {remote!r} is not a URL the forge can serve"
        if parts.password is not None or (parts.username is not None and parts.scheme in ("http", "https")):
            return "a repository URL must not carry credentials; give the worker its own (executors.agent.forge)"
        host, path = parts.hostname, parts.path
    forge_host = urlsplit(forge.root).hostname or ""
    # NB: GitHub's API has a host of its own (api.github.com serves github.com's repositories)
    if host.lower() not in (forge_host.lower(), forge_host.lower().removeprefix("api.")):
        return f"repository {remote} is not on the worker's forge ({forge.root})"
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) < 2:
        return f"repository {remote} does not name an owner and a repository"
    owner, name = segments[-2], segments[-1].removesuffix(".git")
    if not SEGMENT.match(owner) or not SEGMENT.match(name):
        return f"repository {remote} does not name an owner and a repository"
    return Repository(owner, name)


@dataclass(frozen=True)
class PullRequest:
    """An open pull request as the forge told it."""

    number: int
    url: str
    title: str
    body: str
    draft: bool


@dataclass(frozen=True)
class Wanted:
    """What the task's pull request should say."""

    head: str
    title: str
    body: str
    draft: bool
    base: str | None = None
    """The branch it merges into; None: the repository's default branch."""


@dataclass(frozen=True)
class Create:
    wanted: Wanted


@dataclass(frozen=True)
class Update:
    number: int
    title: str
    body: str


@dataclass(frozen=True)
class Keep:
    found: PullRequest


Action = Create | Update | Keep


def plan(wanted: Wanted, found: PullRequest | None) -> Action | str:
    """Create the pull request, or update the one open for the branch (never a second one for a task); or why
    there can be none. A draft is not turned into a ready one on GitHub by an update (its REST API cannot), so the
    record says what the forge says it is."""
    if wanted.base is not None and wanted.head == wanted.base:
        return f"the task's branch {wanted.head} is the branch it would merge into"
    if found is None:
        return Create(wanted)
    if (found.title, found.body) == (wanted.title, wanted.body):
        return Keep(found)
    return Update(found.number, wanted.title, wanted.body)


@dataclass(frozen=True)
class Report:
    """What the pull request tells of the task's work."""

    task: AgenticTask
    verdict: str
    summary: str
    usage: Usage
    """Every attempt's, summed (`total_usage`)."""
    models: tuple[str, ...]
    changed_files: tuple[str, ...] = ()
    commit: str | None = None
    gates: tuple[GateResult, ...] = ()
    fix_rounds: int = 0
    review: ReviewRecord | None = None


def total_usage(usages: Sequence[Usage]) -> Usage:
    """What the task's attempts consumed together (the PR's usage line: a task that escalated or was reviewed ran
    several); the model of the last."""
    cached = [u.cached_prompt_tokens for u in usages if u.cached_prompt_tokens is not None]
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        total_tokens=sum(u.total_tokens for u in usages),
        turns=sum(u.turns for u in usages),
        tool_calls=sum(u.tool_calls for u in usages),
        model=usages[-1].model if usages else None,
        estimated=any(u.estimated for u in usages),
        cached_prompt_tokens=sum(cached) if cached else None,
    )


def asked(
    policy: PullRequestPolicy, verdict: str, *, reviewed: bool, escalates: bool
) -> Literal["open", "draft"] | None:
    """What an agent attempt's end asks of the forge: what `policy` wants of its verdict; nothing while a review
    follows its GO (the reviewer's answer decides, in the review step), nor for a failure that goes on to the next
    model of its ladder (that one starts from the base commit; the ladder's last attempt drafts)."""
    if reviewed or escalates:
        return None
    return policy.wants(verdict)


def wanted(
    kind: Literal["gitea", "github"], report: Report, *, head: str, draft: bool, base: str | None = None
) -> Wanted:
    """The pull request for a task's branch: title from the summary's first line, body from the whole report."""
    task = report.task
    first = next((line.strip() for line in report.summary.splitlines() if line.strip()), "")
    title = (first or f"Work of task {task.name}")[:TITLE_LIMIT]
    if kind == "gitea":
        # NB: Gitea's draft is its title's prefix: a ready pull request must not start with one, a draft must
        title = _unprefixed(title)
        if draft:
            title = DRAFT_PREFIX + title
    return Wanted(head=head, base=base, title=title, body=body_for(report), draft=draft)


def _unprefixed(title: str) -> str:
    while (prefix := next((p for p in WIP_PREFIXES if title.upper().startswith(p)), None)) is not None:
        title = title[len(prefix) :].lstrip()
    return title or "Work"


def body_for(report: Report) -> str:
    task, usage = report.task, report.usage
    namespace = task.namespace or "default"
    tokens = f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
    lines = [
        f"**Verdict: {report.verdict}** — Foreman agent task `{namespace}/{task.name}`",
        "",
        "### Summary",
        "",
        "{summary}",
        "",
        "### Run",
        "",
        f"- Models: {', '.join(f'`{model}`' for model in report.models) or 'the server default'}",
        f"- Usage: {usage.turns} turns, {usage.tool_calls} tool calls, {tokens}"
        + (" (partly estimated)" if usage.estimated else ""),
    ]
    if report.gates:
        rounds = (
            f" after {report.fix_rounds} fix round{'s' if report.fix_rounds != 1 else ''}" if report.fix_rounds else ""
        )
        lines.append(f"- Verify gates{rounds}:")
        for gate in report.gates:
            exit_status = f", exit {gate.exit_status}" if gate.exit_status is not None else ""
            lines.append(f"  - `{gate.name}`: {gate.status}{exit_status} ({gate.seconds:.1f} s)")
    if report.review is not None:
        by = f" ({report.review.model})" if report.review.model else ""
        lines.append(f"- Review by Agent `{report.review.agent_ref}`{by}: {report.review.verdict}")
    if report.commit:
        lines.append(f"- Commit: {report.commit}")
    if report.changed_files:
        shown = ", ".join(f"`{path}`" for path in report.changed_files[:50])
        more = len(report.changed_files) - 50
        lines.append(f"- Changed files: {shown}" + (f" and {more} more" if more > 0 else ""))
    lines += [
        "",
        f"Transcript: `foreman logs {task.name} -n {namespace}`",
        "",
        f"<!-- foreman-task: {namespace}/{task.name} -->",
    ]
    text = "\n".join(lines)
    room = BODY_LIMIT - len(text)
    summary = report.summary.strip() or "(no summary)"
    if len(summary) > room:
        summary = summary[: max(0, room - 20)] + "\n\n… (cut)"
    return text.replace("{summary}", summary, 1)


TOKEN_VARIABLE = "FOREMAN_FORGE_TOKEN"
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get && printf "username=x-access-token\\npassword=%s\\n" "$' + TOKEN_VARIABLE + '"; }; f'
)
"""Git's credential helper for the forge: the token from the environment of the worker's git (Git.secrets), never
from a file the repository or the agent could write, never on a command line."""


def git_credentials(forge: ForgeSettings) -> dict[str, str]:
    """Git settings that hand the forge's token to the worker's clone and push of the forge's repositories (Gitea
    and GitHub both take a token as the password of HTTP basic auth)."""
    parts = urlsplit(forge.root)
    host = parts.netloc.removeprefix("api.") if forge.kind == "github" else parts.netloc
    path = parts.path.removesuffix("/api/v3") if forge.kind == "github" else parts.path
    return {f"credential.{parts.scheme}://{host}{path}.helper": CREDENTIAL_HELPER}


def token_shown(forge: ForgeSettings, read_only_paths: Sequence[str]) -> str | None:
    """Why a sandbox with these `readOnlyPaths` would let the agent's commands read the forge's token file (None:
    it would not)."""
    if forge.token_file is None:
        return None
    token = PurePosixPath(os.path.abspath(forge.token_file))
    for path in read_only_paths:
        shown = PurePosixPath(os.path.abspath(path))
        if token == shown or shown in token.parents:
            return f"readOnlyPaths: {path} would show the forge's tokenFile to the agent's commands"
    return None


def scrubbed(text: str, secret: str) -> str:
    """A forge's message with the token taken out, should it echo it."""
    return text.replace(secret, "***") if secret else text
