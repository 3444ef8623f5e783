"""The file tools against what a model (or a command it ran) can plant in the workspace: hard links to secrets,
symbolic links swapped while a tool walks, `.git` under every name a file system folds into it, huge and growing
files, FIFOs, names that are not UTF-8, folders 10,000 deep. Each refused or bounded, nothing outside read or
changed, the worker's memory flat."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from foreman.worker.agent import workspace
from foreman.worker.agent.errors import ToolError
from foreman.worker.agent.tools import READ_LIMIT, Toolbox
from foreman.worker.agent.workspace import Workspace
from tests.memory import peak_rss

FILE_TOOLS = ("list_files", "read_file", "write_file", "edit_file", "grep", "submit_result")


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    made = workspace.create(str(tmp_path / "root"), "task")
    (tmp_path / "kubeconfig").write_text("token: admin-secret\n")
    return made


@pytest.fixture
def box(space: Workspace) -> Toolbox:
    return Toolbox(space, FILE_TOOLS)


async def test_hard_links_to_outside_files_are_refused_both_ways(
    box: Toolbox, space: Workspace, tmp_path: Path
) -> None:
    secret = tmp_path / "kubeconfig"
    os.link(secret, space.root / "x")
    for name, arguments in (
        ("read_file", {"path": "x"}),
        ("write_file", {"path": "x", "content": "pwned"}),
        ("edit_file", {"path": "x", "old": "admin", "new": "pwned"}),
    ):
        with pytest.raises(ToolError, match="hard links"):
            await box.call(name, arguments)
    assert "admin-secret" not in await box.call("grep", {"pattern": "token"})
    assert secret.read_text() == "token: admin-secret\n"


async def test_git_under_every_folded_name_and_gitfiles(box: Toolbox, space: Workspace) -> None:
    (space.root / "sub").mkdir()
    (space.root / "sub" / ".git").write_text("gitdir: ../evilgit\n")  # a gitfile, planted by a command
    for path in ("sub/.git", ".GIT/config", ".Git/hooks/x", ".g\u200cit/config", ".git./config", ".git /config",
                 "GIT~1/config", "a/b/.git/config"):  # fmt: skip
        with pytest.raises(ToolError, match=r"\.git is not reachable"):
            await box.call("write_file", {"path": path, "content": "[core]\n\tfsmonitor = touch /tmp/pwned\n"})
    os.symlink(".git", space.root / "innocent")
    with pytest.raises(ToolError, match=r"\.git is not reachable"):
        await box.call("write_file", {"path": "innocent/config", "content": "x"})
    assert "sub/.git" not in await box.call("list_files", {"depth": 5})
    assert (space.root / "sub" / ".git").read_text() == "gitdir: ../evilgit\n"


@pytest.mark.timeout(30, func_only=True)  # NB: 600 tool calls racing a thread that swaps a symlink without pause
async def test_a_symlink_swapped_during_the_walk_never_leads_out(
    box: Toolbox, space: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("outside secret")
    (space.root / "d").mkdir()
    (space.root / "d" / "f.txt").write_text("inside")
    stop = threading.Event()

    def swap() -> None:  # what a background process of the agent's could do
        while not stop.is_set():
            with contextlib.suppress(OSError):  # NB: a write may have made a fresh d/ meanwhile
                os.rename(space.root / "d", space.root / "d.real")
                os.symlink(outside, space.root / "d")
                os.unlink(space.root / "d")
                os.rename(space.root / "d.real", space.root / "d")

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for _ in range(300):
            try:
                text = await box.call("read_file", {"path": "d/f.txt"})
            except ToolError:
                continue
            assert "outside secret" not in text
            try:
                await box.call("write_file", {"path": "d/f.txt", "content": "inside again"})
            except ToolError:
                continue
    finally:
        stop.set()
        swapper.join()
    assert (outside / "f.txt").read_text() == "outside secret"


async def test_a_600_mib_one_line_file_is_cut_in_its_first_line_without_holding_it(
    box: Toolbox, space: Workspace
) -> None:
    with (space.root / "one-line.txt").open("wb") as out:
        for _ in range(64):
            out.write(b"a" * (1024 * 1024))
    before = peak_rss()
    text = await box.call("read_file", {"path": "one-line.txt"})
    assert len(text) < READ_LIMIT + 200
    assert "line 1 cut at 20000 characters" in text
    assert peak_rss() - before < 32 * 1024 * 1024
    assert await box.call("grep", {"pattern": "b"}) == "(no matches)"  # too large to be source: skipped


async def test_a_file_growing_while_read_is_read_to_its_size_at_open(box: Toolbox, space: Workspace) -> None:
    path = space.root / "log.txt"
    path.write_text("line\n" * 1000)
    stop = threading.Event()

    def grow() -> None:
        with path.open("a") as out:
            while not stop.is_set():
                out.write("more\n" * 1000)

    grower = threading.Thread(target=grow)
    grower.start()
    try:
        text = await box.call("read_file", {"path": "log.txt", "start_line": 1, "end_line": 3})
    finally:
        stop.set()
        grower.join()
    assert text.splitlines()[0].endswith("line")


async def test_fifos_devices_and_folders_are_not_files(box: Toolbox, space: Workspace) -> None:
    os.mkfifo(space.root / "pipe")
    with pytest.raises(ToolError, match="not a regular file"):
        await box.call("read_file", {"path": "pipe"})
    with pytest.raises(ToolError, match="not a regular file"):
        await box.call("write_file", {"path": "pipe", "content": "x"})
    (space.root / "folder").mkdir()
    with pytest.raises(ToolError, match="is a directory"):
        await box.call("write_file", {"path": "folder", "content": "x"})


@pytest.mark.parametrize(
    ("path", "message"),
    [("a\0b", "NUL"), ("\udcff.txt", "not valid UTF-8"), ("x/" * 300, "at most 256 components"), ("y" * 5000, "4096")],
)
async def test_bad_paths_are_tool_errors(box: Toolbox, path: str, message: str) -> None:
    for name, arguments in (("read_file", {"path": path}), ("write_file", {"path": path, "content": "x"})):
        with pytest.raises(ToolError, match=message):
            await box.call(name, arguments)


@pytest.mark.timeout(30, func_only=True)  # NB: it makes and walks 10,000 real nested folders (~1 s idle, 3+ s loaded)
async def test_names_that_are_not_utf8_and_10000_deep_folders_do_not_crash(box: Toolbox, space: Workspace) -> None:
    (space.root / os.fsdecode(b"caf\xe9.txt")).write_text("x = 1\n")
    fd = os.open(space.root, os.O_RDONLY)
    try:
        for _ in range(10_000):
            os.mkdir("d", dir_fd=fd)
            following = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = following
    finally:
        os.close(fd)
    listing = await box.call("list_files", {"depth": 100_000})
    assert "caf\udce9.txt" in listing
    assert listing.count("\n") < 600
    assert "x = 1" in await box.call("grep", {"pattern": "x = "})
    await workspace.remove(space)  # NB: a recursive delete (pytest's own clean-up of old runs) could not
    assert not space.root.parent.exists()
