"""The agent's workspace: a fresh folder per task (`work/`), the agent's HOME beside it (`home/`), and, for a task
on a repository, the worker's own git folder beside those (`git/`), which neither the tools nor the sandbox reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from foreman.worker.agent import files
from foreman.worker.agent.errors import WorkspaceError


@dataclass(frozen=True)
class Workspace:
    root: Path
    """Resolved (no symbolic links in it): every tool opens files from a descriptor of it (agent/files.py)."""
    home: Path
    """HOME of the agent's commands: beside the workspace, so caches they write are not committed with the work."""


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
    """The task's folder and everything in it, however deep the agent nested it."""
    with contextlib.suppress(OSError):
        await asyncio.to_thread(files.remove_tree, str(workspace.root.parent))
