"""The Dockerfile's image, built by tests/servers/build-image.sh (`make image`) as localhost/foreman:dev, and its
containers, run with the podman that build left (its storage, runc, no default ulimits)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from foreman.api.tooling.localcluster.cluster import cache_dir, unbuilt

IMAGE = "localhost/foreman:dev"


def podman_path() -> Path:
    return cache_dir() / "image" / "podman"


def missing() -> str | None:
    """Why the image cannot run here (None: it can)."""
    if shutil.which("podman") is None:
        return "podman is not installed: run `make image`"
    if reason := unbuilt(podman_path().parent, (podman_path().name,), "the image", "image"):
        return reason
    found = subprocess.run([str(podman_path()), "image", "exists", IMAGE], capture_output=True, check=False)
    return None if found.returncode == 0 else f"{IMAGE} is not built: run `make image`"


async def podman(*args: str) -> tuple[int, str]:
    """Run podman: its exit code and its output (stdout, then stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(podman_path()), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


class Container:
    def __init__(self, name: str):
        self.name = name

    async def logs(self) -> str:
        return (await podman("logs", self.name))[1]

    async def wait(self) -> int:
        """Its exit code once it has ended by itself."""
        code, said = await podman("wait", self.name)
        assert code == 0, said
        return int(said)

    async def stop(self) -> int:
        """SIGTERM, as the kubelet sends it; the exit code once it has ended."""
        code, said = await podman("stop", "--time", "30", self.name)
        assert code == 0, said
        code, state = await podman("inspect", "--format", "{{.State.ExitCode}}", self.name)
        assert code == 0, state
        return int(state)


@contextlib.asynccontextmanager
async def running(
    name: str,
    *args: str,
    files: dict[Path, str] | None = None,
    env: dict[str, str] | None = None,
    scratch: tuple[str, ...] = (),
    sandboxing: bool = False,
) -> AsyncIterator[Container]:
    """The image's `foreman ARGS` in a container on the host's network (where the suite's apiserver listens) as a pod
    of the manifests runs: uid 10001 and a read-only root, with an empty writable folder at each of `scratch` (an
    emptyDir). `files`: host file to path inside, mounted read-only; `sandboxing`: the securityContext bubblewrap needs
    (README, "The image"): no seccomp filter (seccompProfile Unconfined; the default one refuses sethostname) and
    /proc unmasked (procMount Unmasked). Removed at the end, whatever happened."""
    run = ["run", "--detach", "--name", name, "--network=host", "--read-only", "--read-only-tmpfs=false"]
    run += [f"--tmpfs={path}" for path in scratch]
    run += [f"--volume={host}:{inside}:ro" for host, inside in (files or {}).items()]
    run += [f"--env={key}={value}" for key, value in (env or {}).items()]
    run += ["--security-opt=seccomp=unconfined", "--security-opt=unmask=ALL"] if sandboxing else []
    code, said = await podman(*run, IMAGE, *args)
    try:
        assert code == 0, f"podman run {name}: {said}"
        yield Container(name)
    finally:
        await podman("rm", "--force", "--time", "0", name)
