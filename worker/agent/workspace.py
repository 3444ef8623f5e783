"""The agent's workspace: a fresh directory per task, optionally a git checkout, that no tool path may leave.

Paths from the model are resolved here, once, for every tool: absolute paths, `..` and symbolic links that lead out
are refused, and so is `.git` (a model that could write `.git/hooks` or `.git/config` could make our own commit run
its code). Git runs with hooks and fsmonitor switched off and the `ext::` transport refused for the same reason.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

GIT_SAFETY = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never")


class ToolError(Exception):
    """A tool could not do what the model asked; the message goes back to the model as the tool's result."""


class WorkspaceError(Exception):
    """The workspace could not be set up (clone failed, bad branch name): the task fails with this message."""


@dataclass(frozen=True)
class Workspace:
    root: Path
    """Resolved (no symbolic links in it), so containment is a prefix check on resolved paths."""
    home: Path
    """HOME of the agent's commands: beside the workspace, so caches they write are not committed with the work."""

    def resolve(self, path: str, *, for_writing: bool = False) -> Path:
        relative = Path(path or ".")
        if relative.is_absolute():
            raise ToolError(f"{path}: absolute paths are not allowed; use a path relative to the workspace")
        if ".." in relative.parts:
            raise ToolError(f"{path}: '..' is not allowed; paths stay inside the workspace")
        resolved = (self.root / relative).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ToolError(f"{path}: leads outside the workspace (through a symbolic link)")
        inside = resolved.relative_to(self.root).parts
        if inside[:1] == (".git",) and for_writing:
            raise ToolError(f"{path}: the repository's .git directory is not writable")
        return resolved

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root)) or "."


BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")


def branch_for(task_name: str, wanted: str | None) -> str:
    """The branch the agent works on: the task's, or `foreman/<task>`; refuses names git would misread."""
    branch = wanted or f"foreman/{task_name}"
    if not BRANCH.match(branch) or branch.endswith(".lock"):
        raise WorkspaceError(f"branch {branch!r} is not a valid branch name")
    return branch


def create(root: str | None, task_name: str) -> Workspace:
    """A fresh directory for one task under `root` (the system's temporary directory when unset): `work/`, the
    workspace, and `home/` beside it."""
    base = Path(root or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    top = Path(tempfile.mkdtemp(prefix=f"{task_name}-", dir=base)).resolve()
    (top / "work").mkdir()
    (top / "home").mkdir()
    return Workspace(root=top / "work", home=top / "home")


async def remove(workspace: Workspace) -> None:
    await asyncio.to_thread(shutil.rmtree, workspace.root.parent, True)


# -- git ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    branch: str
    commit: str | None
    changed_files: list[str]


def git_environment() -> dict[str, str]:
    """No credentials of the worker beyond what git itself needs (its own config for a push), no prompts."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "TMPDIR")
    environment = {key: os.environ[key] for key in keep if key in os.environ}
    return {**environment, "GIT_TERMINAL_PROMPT": "0"}


async def git(cwd: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "git", *GIT_SAFETY, *args, cwd=cwd, env=git_environment(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await process.communicate()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        detail = (err or out).decode(errors="replace").strip().splitlines()
        raise WorkspaceError(f"git {args[0]} failed: {detail[-1] if detail else f'exit {process.returncode}'}")
    return out.decode(errors="replace").strip()


async def checkout(workspace: Workspace, repo: str, branch: str) -> str:
    """Clone `repo` into the workspace and put it on `branch` (the remote's if it has one, else new from the default
    branch). Returns the commit the work starts from."""
    await git(workspace.root, "clone", "--quiet", "--", repo, ".")
    remote = await git(workspace.root, "ls-remote", "--heads", "origin", branch)
    if remote:
        await git(workspace.root, "checkout", "--quiet", branch)
    else:
        await git(workspace.root, "checkout", "--quiet", "-b", branch)
    return await git(workspace.root, "rev-parse", "HEAD")


async def commit(workspace: Workspace, *, base: str, branch: str, message: str, author: str, push: bool) -> Change:
    """Commit everything the agent changed on its branch (and push it to origin's branch of that name)."""
    name, email = _author(author)
    await git(workspace.root, "add", "--all")
    if await git(workspace.root, "status", "--porcelain"):
        await git(
            workspace.root, "-c", f"user.name={name}", "-c", f"user.email={email}",
            "commit", "--quiet", "--no-verify", "-m", message,
        )  # fmt: skip
    head = await git(workspace.root, "rev-parse", "HEAD")
    changed = await git(workspace.root, "diff", "--name-only", base, head)
    if head != base and push:
        await git(workspace.root, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
    return Change(branch=branch, commit=head if head != base else None, changed_files=changed.splitlines())


def _author(author: str) -> tuple[str, str]:
    """`Name <email>` (the usual git form) split in two."""
    match = re.fullmatch(r"\s*(.+?)\s*<([^<>]+)>\s*", author)
    return (match.group(1), match.group(2)) if match else (author.strip() or "Foreman agent", "agent@foreman.dev")
