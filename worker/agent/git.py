"""The worker's own git: it never runs a program that the repository, the agent or its commands could have planted.

A workspace holds files and nothing of git: the repository lives beside it, in a folder only the worker sees (the
sandbox does not bind it). Git reads no system or global config, runs no hooks, filters, fsmonitor, pager, signing
program or credential helper but those the worker's own config names, and never looks at the workspace as a work
tree when committing: the agent's files are read by the worker (files.walk: no links followed, `.git` under any name
skipped, files with several links skipped) and handed to `git fast-import` as data. So a `.gitattributes` filter, a
nested repository's promisor remote, a gitfile, `core.fsmonitor` in a planted config: none of them is ever looked
at. Every git process has a time limit and its process group is killed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from foreman.worker.agent import files
from foreman.worker.agent.errors import WorkspaceError
from foreman.worker.agent.workspace import Workspace
from foreman.worker.sandbox.process import kill_group

SAFETY = (
    "core.hooksPath=/dev/null", "core.fsmonitor=false", "core.pager=cat", "core.askPass=", "core.sshCommand=ssh",
    "protocol.ext.allow=never", "protocol.file.allow=always", "commit.gpgSign=false", "tag.gpgSign=false",
    "submodule.recurse=false", "fetch.recurseSubmodules=false", "diff.external=", "credential.helper=",
    "uploadpack.packObjectsHook=", "core.symlinks=true",
)  # fmt: skip
"""Set on every command line, above whatever a config file says."""
TIMEOUT = 300.0
COMMIT_DEPTH = files.MAX_DEPTH


def refusal(repo: str, allowed: Sequence[str]) -> str | None:
    """Why the worker may not clone `repo` (None: it may). Only what its config allows, `allowRepos`: URL prefixes
    (`https://gitea.example/team/`), local paths only when listed; never a URL with credentials in it (they belong
    in the worker's config) nor an option or a transport that runs a program."""
    if repo.startswith("-") or "::" in repo.split("/", 1)[0]:
        return f"repository {repo!r} is not a URL or a path"
    if re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*@", repo, re.IGNORECASE) and not repo.lower().startswith("ssh://git@"):
        return "a repository URL must not carry credentials; give the worker its own (executors.agent.gitConfig)"
    for prefix in allowed:
        if repo == prefix.rstrip("/") or repo.startswith(prefix if prefix.endswith("/") else f"{prefix}/"):
            return None
    listed = ", ".join(allowed) or "none"
    return f"repository {repo} is not allowed on this node (executors.agent.allowRepos: {listed})"


@dataclass(frozen=True)
class Change:
    branch: str
    commit: str | None
    changed_files: list[str]
    skipped: list[str] = field(default_factory=list)
    """Paths not committed, with why (a `.git`, a file with several links, a FIFO)."""


@dataclass
class Git:
    """Git for one workspace, with the worker's settings."""

    space: Workspace
    config: Mapping[str, str] = field(default_factory=dict)
    """`executors.agent.gitConfig` (credential helpers, proxies): the only config git reads beyond the repository's
    own, which the worker wrote at clone."""
    written: bytes | None = None
    """The repository's config as the clone wrote it: put back before every later git command (an unconfined
    command of the agent's could reach the folder)."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Environment of git's processes only (the forge's token, which its credential helper reads): never on a
    command line, never in the sandbox."""
    remote_branch: bool = False
    """The remote had the task's branch at checkout (an earlier attempt pushed it)."""

    @property
    def folder(self) -> Path:
        return self.space.root.parent / "git"

    def environment(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "TMPDIR")
        environment = {key: os.environ[key] for key in keep if key in os.environ}
        home = self.space.root.parent / "git-home"
        home.mkdir(exist_ok=True)
        return {
            **environment, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ATTR_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", **self.secrets,
        }  # fmt: skip

    def argv(self, *args: str, in_repository: bool = True) -> list[str]:
        settings = [*SAFETY, *(f"{key}={value}" for key, value in self.config.items())]
        repository = [f"--git-dir={self.folder}"] if in_repository else []
        return ["git", *(part for setting in settings for part in ("-c", setting)), *repository, *args]

    async def run(
        self, *args: str, stdin: Path | None = None, time_limit: float = TIMEOUT, in_repository: bool = True
    ) -> str:
        """One git command (stdin from a file, if any): its stdout, or WorkspaceError with its last line of
        stderr."""
        if in_repository and self.written is not None:
            await asyncio.to_thread(self._keep_config)
        argv = self.argv(*args, in_repository=in_repository)
        out, err, code = await _execute(argv, self.environment(), stdin, time_limit)
        if code != 0:
            detail = (err or out).decode(errors="replace").strip().splitlines()
            last = detail[-1] if detail else ("timed out" if code is None else f"exit {code}")
            raise WorkspaceError(f"git {args[0]} failed: {last}")
        return out.decode(errors="replace").strip()

    async def checkout(self, repo: str, branch: str) -> str:
        """Clone `repo` beside the workspace, fill the workspace with the branch's files (the remote's if it has
        one, else the default branch's); the commit the work starts from."""
        await self.run("clone", "--bare", "--quiet", "--no-tags", "--", repo, str(self.folder), in_repository=False)
        self.written = await asyncio.to_thread((self.folder / "config").read_bytes)
        has_branch = await self.run("for-each-ref", "--format=%(refname)", f"refs/heads/{branch}")
        self.remote_branch = bool(has_branch)
        base = await self.run("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}" if has_branch else "HEAD")
        await self.run(f"--work-tree={self.space.root}", "checkout", "--quiet", "--force", base, "--", ".")
        await self.run("update-ref", f"refs/heads/{branch}", base)
        return base

    async def commit(self, *, base: str, branch: str, message: str, author: str, push: bool) -> Change:
        """Commit the workspace's files on the branch, as data; push it to origin's branch of that name."""
        name, email = _author(author)
        found, skipped = await asyncio.to_thread(_candidates, self.space.root)
        ignored = await self.ignored([entry.path for entry in found], base)
        entries = [entry for entry in found if entry.path not in ignored]
        stream = self.space.root.parent / "commit.fast-import"
        who = f"{name} <{email}> {int(time.time())} +0000"
        await asyncio.to_thread(_write_stream, self.space.root, stream, entries, base, branch, message, who)
        try:
            await self.run("fast-import", "--quiet", "--force", "--done", stdin=stream)
        finally:
            await asyncio.to_thread(stream.unlink, True)
        head = await self.run("rev-parse", f"refs/heads/{branch}")
        if await self.run("rev-parse", f"{head}^{{tree}}") == await self.run("rev-parse", f"{base}^{{tree}}"):
            await self.run("update-ref", f"refs/heads/{branch}", base)
            return Change(branch, None, [], skipped)
        changed = await self.run("diff", "--name-only", "--no-ext-diff", "--no-textconv", base, head)
        if push:
            await self.run("push", "--quiet", "origin", f"refs/heads/{branch}:refs/heads/{branch}")
        return Change(branch, head, changed.splitlines(), skipped)

    async def diff(self, base: str, head: str) -> str:
        """The change from `base` to `head`, as a patch (no external diff or text conversion drivers)."""
        return await self.run("diff", "--no-ext-diff", "--no-textconv", "--no-color", base, head)

    def _keep_config(self) -> None:
        path = self.folder / "config"
        with contextlib.suppress(FileNotFoundError):
            if path.is_symlink() or path.read_bytes() != self.written:
                path.unlink()
        if not path.exists():
            assert self.written is not None
            path.write_bytes(self.written)

    async def ignored(self, paths: Sequence[str], base: str) -> set[str]:
        """The paths `.gitignore` rules leave out (as `git add --all` would), less those the base commit tracks.
        NB: check-ignore only matches patterns, read as data from the workspace's ignore files."""
        tracked = set((await self.run("ls-tree", "-r", "-z", "--name-only", base)).split("\0"))
        asked = [path for path in paths if path not in tracked]
        if not asked:
            return set()
        listing = self.space.root.parent / "commit.paths"
        await asyncio.to_thread(listing.write_bytes, b"".join(os.fsencode(path) + b"\0" for path in asked))
        try:
            argv = self.argv(f"--work-tree={self.space.root}", "check-ignore", "--stdin", "-z", "--no-index")
            out, err, code = await _execute(argv, self.environment(), listing, TIMEOUT, cwd=self.space.root)
        finally:
            await asyncio.to_thread(listing.unlink, True)
        if code not in (0, 1):  # 1: none ignored
            raise WorkspaceError(f"git check-ignore failed: {err.decode(errors='replace').strip()}")
        return {os.fsdecode(path) for path in out.split(b"\0") if path}


@dataclass(frozen=True)
class Candidate:
    """A workspace entry that may go into the commit."""

    path: str
    link: bool


def _candidates(root: Path) -> tuple[list[Candidate], list[str]]:
    """The workspace's regular files and links, found without following a link; and what is left out, with why."""
    found: list[Candidate] = []
    skipped: list[str] = []
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for entry, folder in files.walk(top, depth=COMMIT_DEPTH):
            if entry.folder:
                continue
            info = os.stat(entry.path.rsplit("/", 1)[-1], dir_fd=folder, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                found.append(Candidate(entry.path, link=True))
            elif stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                found.append(Candidate(entry.path, link=False))
            else:
                why = "several hard links" if stat.S_ISREG(info.st_mode) else "not a regular file"
                skipped.append(f"{entry.path} ({why})")
    finally:
        os.close(top)
    return found, skipped


def _write_stream(
    root: Path, into: Path, entries: Sequence[Candidate], base: str, branch: str, message: str, who: str
) -> None:
    """A fast-import stream whose commit holds exactly these entries of the workspace, each read on a descriptor
    without following a link, one at a time (the worker holds none whole but the one it copies)."""
    lines: list[bytes] = []
    with into.open("wb") as out:
        for mark, entry in enumerate(entries, 1):
            data, mode = _content(root, entry)
            out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)))
            out.write(data)
            out.write(b"\n")
            lines.append(b"M %s :%d %s\n" % (mode, mark, _quoted(os.fsencode(entry.path))))
        text = message.encode()
        out.write(b"commit refs/heads/%s\nauthor %s\ncommitter %s\ndata %d\n%s\nfrom %s\ndeleteall\n" % (
            branch.encode(), who.encode(), who.encode(), len(text), text, base.encode()
        ))  # fmt: skip
        out.write(b"".join(lines) + b"\ndone\n")


def _content(root: Path, entry: Candidate) -> tuple[bytes, bytes]:
    """An entry's bytes and git mode: a link's target, or a regular file's content (one link, never followed)."""
    folder_path, _, leaf = entry.path.rpartition("/")
    folder = files.open_in(str(root), folder_path or ".", "folder")
    try:
        if entry.link:
            return os.fsencode(os.readlink(leaf, dir_fd=folder.fd)), b"120000"
        opened = files.open_file_at(folder.fd, leaf, entry.path)
        try:
            data = files.read_bytes(opened.fd, opened.size)
            executable = os.fstat(opened.fd).st_mode & stat.S_IXUSR
        finally:
            os.close(opened.fd)
        return data, b"100755" if executable else b"100644"
    finally:
        os.close(folder.fd)


def _quoted(path: bytes) -> bytes:
    """A path in fast-import's C-style quotes: printable ASCII as it is (but quote and backslash), any other byte
    in octal, so no name (a newline, a quote, bytes that are not UTF-8) can break the stream."""
    escaped = bytearray()
    for byte in path:
        if byte in b'"\\':
            escaped += b"\\" + bytes([byte])
        elif 0x20 <= byte < 0x7F:
            escaped.append(byte)
        else:
            escaped += b"\\%03o" % byte
    return b'"' + bytes(escaped) + b'"'


def _author(author: str) -> tuple[str, str]:
    """`Name <email>` (the usual git form) split in two; nothing that could break a fast-import line."""
    match = re.fullmatch(r"\s*([^<>\n]+?)\s*<([^<>\n]+)>\s*", author)
    return (match.group(1), match.group(2)) if match else ("Foreman agent", "agent@foreman.dev")


async def _execute(
    argv: Sequence[str], env: Mapping[str, str], stdin: Path | None, time_limit: float, cwd: Path | None = None
) -> tuple[bytes, bytes, int | None]:
    """Run git in its own process group (killed with it, however it ends); None for its code when it timed out."""
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(stdin.open("rb")) if stdin is not None else asyncio.subprocess.DEVNULL
        process = await asyncio.create_subprocess_exec(
            *argv, env=dict(env), stdin=source, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, cwd=cwd,
        )  # fmt: skip
    code: int | None = None
    try:
        async with asyncio.timeout(time_limit):
            out, err = await process.communicate()
        code = process.returncode
    except TimeoutError:
        out, err = b"", b""
    finally:
        kill_group(process.pid)
        with contextlib.suppress(ProcessLookupError):
            await asyncio.shield(process.wait())
    return out, err, code
