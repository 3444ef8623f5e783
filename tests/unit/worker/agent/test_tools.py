"""The built-in tools in a real temporary workspace: paths stay inside, errors are messages, outputs are capped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from foreman.worker.agent import tools, workspace
from foreman.worker.agent.errors import ToolError
from foreman.worker.agent.stream import ToolCall
from foreman.worker.agent.tools import DEFINITIONS, Toolbox, allowed
from foreman.worker.agent.workspace import Workspace, branch_for
from foreman.worker.executors.agent import AgentExecutorSettings, Ending, keeps_workspace, submitted_ending
from tests.sandboxes import confined

ALL = ("list_files", "read_file", "write_file", "edit_file", "grep", "run", "submit_result")


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    made = workspace.create(str(tmp_path / "root"), "task")
    (made.root / "src").mkdir()
    (made.root / "src" / "a.py").write_text("def a():\n    return 1\n\n\ndef b():\n    return 1\n")
    (made.root / ".git").mkdir()
    (made.root / ".git" / "config").write_text("[core]\n")
    (tmp_path / "secret").write_text("outside")
    return made


@pytest.fixture
async def box(space: Workspace) -> Toolbox:
    return Toolbox(space, ALL, allow_commands=(("python3", "-c"),), sandbox=await confined())


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../secret", "'..' is not allowed"),
        ("src/../../secret", "'..' is not allowed"),
        ("/etc/passwd", "absolute paths are not allowed"),
        ("escape", "leads outside the workspace"),
        ("escape/secret", "leads outside the workspace"),
    ],
)
async def test_paths_that_lead_out_are_refused(box: Toolbox, space: Workspace, path: str, message: str) -> None:
    os.symlink(space.root.parent.parent, space.root / "escape")
    for name, arguments in (("read_file", {"path": path}), ("write_file", {"path": path, "content": "x"})):
        with pytest.raises(ToolError, match=message):
            await box.call(name, arguments)


async def test_a_symlink_that_stays_inside_is_fine_and_git_is_not_reachable(box: Toolbox, space: Workspace) -> None:
    os.symlink("src", space.root / "inner")
    os.symlink("../src/a.py", space.root / "src" / "again.py")
    assert "return 1" in await box.call("read_file", {"path": "inner/a.py"})
    assert "return 1" in await box.call("read_file", {"path": "src/again.py"})
    for path in (".git/hooks/pre-commit", ".git/config", "sub/.git", ".GIT/config", "a/.Git/config", ".git."):
        for name, arguments in (("read_file", {"path": path}), ("write_file", {"path": path, "content": "x"})):
            with pytest.raises(ToolError, match=r"\.git is not reachable"):
                await box.call(name, arguments)


async def test_edit_file_wants_exactly_one_occurrence(box: Toolbox, space: Workspace) -> None:
    with pytest.raises(ToolError, match=r"occurs 2 times in src/a\.py; it must occur exactly once"):
        await box.call("edit_file", {"path": "src/a.py", "old": "return 1", "new": "return 2"})
    with pytest.raises(ToolError, match="occurs 0 times"):
        await box.call("edit_file", {"path": "src/a.py", "old": "nope", "new": "x"})
    await box.call("edit_file", {"path": "src/a.py", "old": "def b():\n    return 1", "new": "def b():\n    return 2"})
    assert (space.root / "src" / "a.py").read_text().endswith("return 2\n")


async def test_read_file_numbers_lines_ranges_and_says_where_it_cut(box: Toolbox, space: Workspace) -> None:
    assert (await box.call("read_file", {"path": "src/a.py", "start_line": 2, "end_line": 2})).split("\t") == [
        "     2",
        "    return 1",
    ]
    (space.root / "big.txt").write_text("\n".join("x" * 100 for _ in range(1000)))
    text = await box.call("read_file", {"path": "big.txt"})
    assert len(text) < tools.READ_LIMIT + 200
    assert "read on with start_line=" in text.splitlines()[-1]
    with pytest.raises(ToolError, match="no such file"):
        await box.call("read_file", {"path": "missing.txt"})
    (space.root / "blob").write_bytes(b"\0\1\2")
    with pytest.raises(ToolError, match="binary"):
        await box.call("read_file", {"path": "blob"})


async def test_list_files_and_grep(box: Toolbox, space: Workspace) -> None:
    (space.root / "src" / "deep" / "er").mkdir(parents=True)
    (space.root / "src" / "deep" / "er" / "c.py").write_text("x = 1\n")
    listing = (await box.call("list_files", {})).splitlines()
    assert "src/" in listing
    assert "src/a.py" in listing
    assert "src/deep/" in listing
    assert not any(line.startswith(".git") for line in listing)
    assert "src/deep/er/c.py" not in listing  # depth 2
    assert "src/deep/er/c.py" in await box.call("list_files", {"path": "src", "depth": 5})
    assert (await box.call("grep", {"pattern": r"def \w+"})).splitlines() == [
        "src/a.py:1: def a():",
        "src/a.py:5: def b():",
    ]
    with pytest.raises(ToolError, match="invalid regular expression"):
        await box.call("grep", {"pattern": "("})


async def test_run_only_allowed_commands_without_a_shell_or_credentials(
    box: Toolbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/root/.kube/config")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    out = await box.call("run", {"argv": ["python3", "-c", "import os; print(sorted(os.environ))"]})
    assert out.startswith("exit code 0")
    assert "KUBECONFIG" not in out
    assert "OPENAI_API_KEY" not in out
    with pytest.raises(ToolError, match=r"command not allowed on this node: sh -c echo hi"):
        await box.call("run", {"argv": ["sh", "-c", "echo hi"]})
    with pytest.raises(ToolError, match="exit code 3"):
        await box.call("run", {"argv": ["python3", "-c", "import sys; print('boom'); sys.exit(3)"]})
    with pytest.raises(ToolError, match="timed out after 1 s"):
        await box.call("run", {"argv": ["python3", "-c", "import time; time.sleep(30)"], "timeout_seconds": 1})
    with pytest.raises(ToolError, match="argv must be a non-empty list"):
        await box.call("run", {"argv": "python3 -c 1"})


async def test_unknown_tools_and_bad_arguments_are_errors_for_the_model(space: Workspace) -> None:
    reader = Toolbox(space, ("read_file", "submit_result"))
    with pytest.raises(ToolError, match="unknown tool 'run'"):
        await reader.call("run", {"argv": ["ls"]})
    with pytest.raises(ToolError, match="bad arguments for read_file"):
        await reader.call("read_file", {"file": "x"})
    assert [d["function"]["name"] for d in reader.definitions()] == ["read_file", "submit_result"]


@pytest.mark.parametrize(
    ("argv", "ok"),
    [
        (["make", "test"], True),
        (["make", "test", "-j2"], True),
        (["make", "install"], False),
        (["make"], False),
        (["python3", "-m", "pytest", "-q"], True),
        (["python3", "-m", "pip"], False),
        ([], False),
    ],
)
def test_allowed_prefixes(argv: list[str], ok: bool) -> None:
    assert allowed(argv, [["make", "test"], ["python3", "-m", "pytest"]]) is ok
    assert not allowed(argv, [])


@pytest.mark.parametrize("name", ["-x", "a..b", "a//b", "a/", "a.lock", "with space", "a~1", "x" * 201])
def test_branch_names_git_would_misread_are_refused(name: str) -> None:
    with pytest.raises(workspace.WorkspaceError):
        branch_for("t", name)


def test_branch_default_and_good_names() -> None:
    assert branch_for("fix-42", None) == "foreman/fix-42"
    assert branch_for("t", "feature/x-1.2") == "feature/x-1.2"


@pytest.mark.parametrize(
    ("keep", "push", "verdict", "commit", "kept"),
    [
        ("never", True, "GO", "abc", False),
        ("never", False, "GO", "abc", True),  # an unpushed commit lives only in the workspace
        ("never", False, "GO", None, False),
        ("onFailure", True, "NO-GO", None, True),
        ("onFailure", True, "GO", "abc", False),
        ("onFailure", True, None, None, True),  # stopped (timeout, cancel): not a pass
        ("always", True, "GO", "abc", True),
    ],
)
def test_when_the_workspace_is_kept(keep: str, push: bool, verdict: str | None, commit: str | None, kept: bool) -> None:
    settings = AgentExecutorSettings.model_validate({"endpoint": "http://x/v1", "keepWorkspace": keep, "push": push})
    ending = Ending(verdict, "s", "Submitted", {"commit": commit}) if verdict else None  # type: ignore[arg-type]
    assert keeps_workspace(settings, ending) is kept


@pytest.mark.parametrize("verdict", ["SKIPPED", "GATE-PASS", "GATE-FAIL", "GATE-ERROR"])
def test_a_model_cannot_submit_a_verdict_of_the_gates_or_one_that_passes_without_review(verdict: str) -> None:
    """SKIPPED or GATE-PASS would pass the task past its review step (which follows a GO), GATE-FAIL escalate it with
    no gate run: those are the worker's verdicts, from the gates it ran itself."""
    call = ToolCall("c", "submit_result", json.dumps({"verdict": verdict, "summary": "trust me"}))
    assert submitted_ending(call) == f"error: verdict must be one of GO, NO-GO, INCOMPLETE; got {verdict!r}"
    submit = DEFINITIONS["submit_result"]["function"]["parameters"]["properties"]["verdict"]
    assert verdict not in submit["enum"]
    accepted = submitted_ending(ToolCall("c", "submit_result", json.dumps({"verdict": "GO", "summary": "done"})))
    assert not isinstance(accepted, str)
    assert (accepted.verdict, accepted.reason) == ("GO", "Submitted")
