"""The sandbox the tests run agent commands in: the real bubblewrap of this machine (`make test` installs it), found
the way a worker finds it. A machine where it cannot start fails these tests with the reason, never skips them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from foreman.worker.sandbox.sandbox import Sandbox, SandboxSettings, detect

PYTHON = (("python3", "-c"),)


async def confined(
    allow_commands: Sequence[Sequence[str]] = PYTHON, *, workspace_root: str | None = None, **settings: Any
) -> Sandbox:
    found = await detect(
        SandboxSettings.model_validate(settings), allow_commands=allow_commands, workspace_root=workspace_root
    )
    if settings.get("sandbox", "auto") != "none" and found.kind not in ("bubblewrap", "seatbelt"):
        pytest.fail(f"no sandbox works on this machine: {found.message}")
    return found
