"""The real helm of the chart tests: built by tests/servers/build-helm.sh (`make helm`) and cached; skipped, with the
reason printed, where it is not built."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from foreman.api.tooling.localcluster.cluster import cache_dir, unbuilt

VERSION = "4.3.2"
CHART = Path(__file__).resolve().parents[2] / "charts" / "foreman"


def binary() -> Path:
    return cache_dir() / f"helm-v{VERSION}" / "helm"


def missing() -> str | None:
    """Why the real helm cannot run here (None: it can)."""
    return unbuilt(binary().parent, (binary().name,), "helm", "helm")


async def helm(*args: str, kubeconfig: Path | None = None, home: Path) -> str:
    """Run helm; its stdout, or an AssertionError with its output. `home`: its HOME, where its config and caches go
    (the user's are never touched)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}  # NB: its kube client caches discovery under ~/.kube
    config = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    process = await asyncio.create_subprocess_exec(
        str(binary()), *args, *config, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"helm {' '.join(args)} exited {process.returncode}: {err.decode()}{out.decode()}"
    return out.decode()


async def template(*values: str, home: Path) -> list[dict[str, Any]]:
    """The objects `helm template` renders from the chart with `--set` `values`."""
    sets = [arg for value in values for arg in ("--set", value)]
    rendered = await helm("template", "foreman", str(CHART), *sets, home=home)
    return [document for document in yaml.safe_load_all(rendered) if document]
