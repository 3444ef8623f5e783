"""The worker's own git against what a repository, a model or its commands can plant: each way git was made to run
a program of the model's choosing is tried, and the marker file that program would write must stay absent while the
commit and push still happen."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from foreman.api.tooling.scripted_llm import demo_repository
from foreman.worker.agent import git, workspace
from foreman.worker.agent.errors import WorkspaceError
from foreman.worker.agent.git import Git

pytestmark = pytest.mark.timeout(30, func_only=True)  # NB: it runs real git


def run_git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return demo_repository(tmp_path / "origin")


@pytest.fixture
async def checked_out(tmp_path: Path, origin: Path) -> tuple[Git, str]:
    space = workspace.create(str(tmp_path / "ws"), "task")
    repository = Git(space)
    base = await repository.checkout(str(origin), "foreman/task")
    return repository, base


async def test_the_workspace_holds_files_and_nothing_of_git(checked_out: tuple[Git, str]) -> None:
    repository, _ = checked_out
    root = repository.space.root
    assert sorted(os.listdir(root)) == [".gitignore", "README.md", "calc.py", "test_calc.py"]
    assert repository.folder.parent == root.parent  # beside the workspace, not in it


async def test_planted_configs_filters_hooks_signing_and_nested_repositories_run_nothing(
    checked_out: tuple[Git, str], origin: Path, tmp_path: Path
) -> None:
    repository, base = checked_out
    root, home = repository.space.root, repository.space.home
    marker = tmp_path / "PWNED"
    evil = f"touch {marker}"
    (root / ".gitattributes").write_text("* filter=evil diff=evil\n")
    (root / ".git").mkdir()  # what a command could leave: a config with every program git might run
    config = (f"[filter \"evil\"]\n\tclean = {evil}\n\tsmudge = {evil}\n[core]\n\tfsmonitor = {evil}\n"
              f"\thooksPath = hooks\n[gpg]\n\tprogram = {evil}\n[commit]\n\tgpgSign = true\n"
              f"[diff \"evil\"]\n\ttextconv = {evil}\n[remote \"origin\"]\n\treceivepack = {evil}\n")  # fmt: skip
    (root / ".git" / "config").write_text(config)
    (home / ".gitconfig").write_text(config)  # the agent's HOME
    (root / "sub").mkdir()  # a nested repository as a gitfile to a promisor remote whose uploadpack is a program
    (root / "evilgit").mkdir()
    (root / "evilgit" / "config").write_text(
        f"[core]\n\trepositoryformatversion = 1\n[extensions]\n\tpartialClone = origin\n"
        f'[remote "origin"]\n\turl = {origin}\n\tuploadpack = {evil}\n\tpromisor = true\n'
    )
    (root / "sub" / ".git").write_text("gitdir: ../evilgit\n")
    (root / "sub" / "x.txt").write_text("x\n")
    (repository.folder / "config").write_text((repository.folder / "config").read_text() + config)  # unconfined
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    change = await repository.commit(base=base, branch="foreman/task", message="Fix add", author="A <a@b.c>", push=True)
    assert not marker.exists()
    assert change.commit is not None
    assert ".git/config" not in change.changed_files
    assert not any(".git" in path.split("/") for path in change.changed_files)
    assert run_git(origin, "show", "foreman/task:calc.py") == "def add(a, b):\n    return a + b\n"
    assert "receivepack" not in (repository.folder / "config").read_text()  # put back as the clone wrote it


async def test_links_and_odd_names_are_committed_as_data_and_hard_links_never(
    checked_out: tuple[Git, str], origin: Path, tmp_path: Path
) -> None:
    repository, base = checked_out
    root = repository.space.root
    secret = tmp_path / "kubeconfig"
    secret.write_text("token: admin-secret\n")
    os.link(secret, root / "stolen")
    os.symlink(str(secret), root / "link")  # committed as a link, never as the file it names
    (root / 'odd "name"\nwith newline').write_text("ok\n")
    (root / os.fsdecode(b"caf\xe9")).write_text("latin-1 name\n")
    change = await repository.commit(base=base, branch="foreman/task", message="m", author="x", push=True)
    assert change.skipped == ["stolen (several hard links)"]
    assert "admin-secret" not in run_git(origin, "log", "-p", "foreman/task")
    assert run_git(origin, "cat-file", "-p", "foreman/task:link") == str(secret)
    assert run_git(origin, "show", 'foreman/task:odd "name"\nwith newline') == "ok\n"


async def test_nothing_changed_is_no_commit_and_ignored_files_stay_out(checked_out: tuple[Git, str]) -> None:
    repository, base = checked_out
    (repository.space.root / "__pycache__").mkdir()
    (repository.space.root / "__pycache__" / "calc.pyc").write_bytes(b"\0")
    change = await repository.commit(base=base, branch="foreman/task", message="m", author="x", push=False)
    assert (change.commit, change.changed_files) == (None, [])


@pytest.mark.parametrize(
    ("repo", "allowed", "refused"),
    [
        ("https://gitea.example/team/app.git", ["https://gitea.example/team/"], None),
        ("https://gitea.example/teamx/app.git", ["https://gitea.example/team"], "not allowed"),
        ("https://user:token@gitea.example/team/app.git", ["https://user:token@gitea.example/"], "credentials"),
        ("/srv/repos/app", ["/srv/repos"], None),
        ("/srv/repos-other/app", ["/srv/repos"], "not allowed"),
        ("/home/worker/.ssh", [], "not allowed"),
        ("--upload-pack=touch /tmp/x", ["--upload-pack"], "not a URL"),
        ("ext::sh -c touch% /tmp/x", ["ext::"], "not a URL"),
        ("ssh://git@forge.example/team/app.git", ["ssh://git@forge.example/team/"], None),
    ],
)
def test_only_repositories_the_node_allows_are_cloned(repo: str, allowed: list[str], refused: str | None) -> None:
    reason = git.refusal(repo, allowed)
    assert (reason is None) if refused is None else (reason is not None and refused in reason), reason


async def test_a_clone_that_fails_says_why(tmp_path: Path) -> None:
    space = workspace.create(str(tmp_path / "ws"), "task")
    with pytest.raises(WorkspaceError, match="git clone failed"):
        await Git(space).checkout(str(tmp_path / "missing"), "b")
