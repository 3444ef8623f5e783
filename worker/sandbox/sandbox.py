"""The node's sandbox: found once at start (what works here), then used for every command an agent runs.

`auto` takes bubblewrap on Linux and Seatbelt on macOS when a probe command really starts in it; where none does
(bwrap missing, user namespaces refused by AppArmor or a container's seccomp profile) the node runs no commands at
all, and says why. `none` (unconfined) only when the worker's config says so, and then everything says so too.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import Field

from foreman.api.models.base import Model
from foreman.api.models.nodes import EnforcedLimit, NodeSandbox
from foreman.worker.sandbox import policy, process
from foreman.worker.sandbox.cgroup import CgroupParent, CommandCgroup
from foreman.worker.sandbox.policy import (
    HOST_SECRETS,
    CommandLimits,
    Confinement,
    Counters,
    Enforcement,
    Network,
    SandboxKind,
    SandboxMode,
)

PROBE_TIMEOUT = 20.0
HOW_TO_FIX = (
    "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap) and allow unprivileged user namespaces "
    "(Ubuntu 24.04: an AppArmor profile for bwrap; containers: a seccomp profile that allows them), or set "
    "executors.agent.sandbox: none to run commands unconfined"
)


class SandboxSettings(Model):
    """The sandbox part of `executors.agent` in the worker's config."""

    sandbox: SandboxMode = "auto"
    network: Network = "none"
    """`host` opts in to the host's network (the FleetNode and every envelope say so)."""
    limits: CommandLimits = CommandLimits()
    read_only_paths: list[str] = Field(default_factory=list)
    """More host paths the commands may read (a toolchain outside /usr); secrets are never bound, whatever is asked."""


@dataclass(frozen=True)
class Ran:
    """A command's end, as the `run` tool reports it."""

    returncode: int | None
    """None: killed at its timeout."""
    output: str
    total_bytes: int
    limit: str | None = None
    """The limit that ended or hindered it, in words ("killed: memory limit 2 GiB")."""


@dataclass(frozen=True)
class Sandbox:
    """How this node runs an agent's command. `kind` None: no sandbox works here, so no command runs."""

    kind: SandboxKind | None
    settings: SandboxSettings
    version: str | None = None
    tool: str | None = None
    """bwrap's or sandbox-exec's path."""
    prlimit: str | None = None
    cgroups: CgroupParent | None = None
    read_only: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()
    message: str | None = None

    @property
    def runs_commands(self) -> bool:
        return self.kind is not None

    @property
    def network(self) -> Network:
        """What the commands reach: unconfined ones the host's network, whatever the setting says."""
        return "host" if self.kind == "none" else self.settings.network

    @property
    def enforcement(self) -> Enforcement:
        rlimits = self.prlimit is not None or self.kind == "seatbelt"
        return Enforcement(cgroup=self.cgroups is not None, rlimits=rlimits)

    def status(self) -> NodeSandbox:
        """What the FleetNode advertises."""
        kind = self.kind or "unavailable"
        return NodeSandbox(
            kind=kind, version=self.version, network=self.network, limits=self.enforced(),
            message=self.message[:1024] if self.message else None,
        )  # fmt: skip

    def enforced(self) -> list[EnforcedLimit]:
        if self.kind is None:
            return []
        limits = self.settings.limits
        enforcement = self.enforcement
        values = {
            "cpu": f"{limits.cpu_seconds}s", "memory": f"{limits.memory_mib}Mi", "processes": str(limits.processes),
            "fileSize": f"{limits.file_size_mib}Mi", "openFiles": str(limits.open_files),
        }  # fmt: skip
        found = [EnforcedLimit(name="wallTime", value="per command", by="timeout")]
        for name, value in values.items():
            by = enforcement.of(name)
            if by == "rlimit" and name == "memory" and self.kind == "seatbelt":
                by = None  # NB: macOS enforces no address-space limit
            if by is not None:
                found.append(EnforcedLimit.model_validate({"name": name, "value": value, "by": by}))
        return found

    def confinement(self, workspace: Path, home: Path) -> Confinement:
        return Confinement(str(workspace), str(home), self.read_only, links=self.links, network=self.settings.network)

    def wrap(self, argv: Sequence[str], confinement: Confinement, cgroup: CommandCgroup | None) -> list[str]:
        """The whole command line: join the cgroup, set the rlimits, enter the sandbox, run argv."""
        wrapped = [*argv]
        if self.kind == "bubblewrap":
            assert self.tool is not None
            wrapped = [*policy.bwrap_argv(self.tool, confinement), *wrapped]
        if self.prlimit is not None:
            wrapped = [*policy.prlimit_argv(self.prlimit, self.settings.limits, self.enforcement), *wrapped]
        if self.kind == "seatbelt":
            assert self.tool is not None
            profile, parameters = policy.seatbelt_profile(confinement)
            wrapped = [self.tool, "-p", profile, *parameters, *policy.ulimit_argv(self.settings.limits), *wrapped]
        if cgroup is not None:
            wrapped = [*policy.join_argv(cgroup.procs), *wrapped]
        return wrapped

    async def run(
        self, argv: Sequence[str], *, workspace: Path, home: Path, env: dict[str, str], time_limit: float, keep: int
    ) -> Ran:
        """Run one command of the agent's confined; the tail of its output and what limit, if any, it hit."""
        if self.kind is None:
            raise RuntimeError(f"this node runs no commands: {self.message}")
        cgroup = await asyncio.to_thread(self.cgroups.create, self.settings.limits) if self.cgroups else None
        if self.kind == "seatbelt":
            (home / "tmp").mkdir(exist_ok=True)
            env = {**env, "TMPDIR": str(home / "tmp")}
        try:
            finished = await process.execute(
                self.wrap(argv, self.confinement(workspace, home), cgroup),
                cwd=str(workspace), env=env, time_limit=time_limit, keep=keep,
            )  # fmt: skip
        finally:
            counters = Counters()
            if cgroup is not None:
                counters = await asyncio.to_thread(_finish, cgroup)
        output = finished.output.decode(errors="replace")
        limit = policy.limit_hit(finished.returncode, self.settings.limits, counters, output)
        return Ran(finished.returncode, output, finished.total_bytes, limit)

    def report(self) -> list[tuple[bool, str]]:
        """`foreman worker --check-sandbox`: each line is (confined?, what)."""
        if self.kind is None:
            return [(False, f"no sandbox works here, so agents get no run tool: {self.message}")]
        lines = [
            (self.kind != "none", f"sandbox: {self.kind}" + (f" {self.version}" if self.version else "")),
            (self.network == "none", f"network: {self.network}"),
        ]
        if self.kind == "bubblewrap":
            lines += [
                (True, "filesystem: system read-only, workspace and agent HOME writable, private /tmp, no git folder"),
                (True, "hidden: " + ", ".join(self.secrets)),
                (True, "processes: own pid namespace, all killed with the command; no capabilities"),
            ]
        elif self.kind == "none":
            lines.append((False, "filesystem, processes, credentials: everything the worker's user can reach"))
        enforced = {limit.name: limit for limit in self.enforced()}
        for name in ("cpu", "memory", "processes", "fileSize", "openFiles"):
            limit = enforced.get(name)
            lines.append((limit is not None, f"limit {name}: {f'{limit.value} by {limit.by}' if limit else 'none'}"))
        return lines


def _finish(cgroup: CommandCgroup) -> Counters:
    counters = cgroup.counters()
    cgroup.kill_all()
    cgroup.remove()
    return counters


# -- finding what works here -------------------------------------------------------------------------------------------


async def detect(
    settings: SandboxSettings, *, allow_commands: Sequence[Sequence[str]], workspace_root: str | None
) -> Sandbox:
    """The sandbox this node uses, probed: a command that fails to start in it means it does not work here."""
    read_only, links, secrets = await asyncio.to_thread(_visibility, settings, allow_commands, workspace_root)
    prlimit = shutil.which("prlimit") if platform.system() == "Linux" else None
    cgroups = await asyncio.to_thread(CgroupParent.find) if platform.system() == "Linux" else None
    base = Sandbox(None, settings, prlimit=prlimit, cgroups=cgroups, read_only=read_only, links=links, secrets=secrets)
    mode = settings.sandbox
    if mode == "none":
        return replace(base, kind="none", message="unconfined: executors.agent.sandbox is none in the worker's config")
    wanted: Literal["bubblewrap", "seatbelt"] = (
        mode if mode != "auto" else ("seatbelt" if platform.system() == "Darwin" else "bubblewrap")
    )
    tool = shutil.which("bwrap" if wanted == "bubblewrap" else "sandbox-exec")
    if tool is None:
        return replace(base, message=f"{wanted} is not installed: {HOW_TO_FIX}")
    version = await _version(tool) if wanted == "bubblewrap" else None
    candidate = replace(base, kind=wanted, tool=tool, version=version)
    failure = await _probe(candidate)
    if failure is not None:
        return replace(base, message=f"{wanted} cannot start a sandbox here ({failure}): {HOW_TO_FIX}")
    return candidate


def _visibility(
    settings: SandboxSettings, allow_commands: Sequence[Sequence[str]], workspace_root: str | None
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    """The host paths a command may read (top-level links among them made again as links), and the secrets it
    never may (reported by --check-sandbox)."""
    home = os.path.expanduser("~")
    workspaces = str(Path(workspace_root or tempfile.gettempdir()).resolve())
    secrets = (*policy.home_secrets(home), *HOST_SECRETS, *_kubeconfigs(), workspaces)
    candidates = _candidates(settings, allow_commands)
    links = tuple(
        (path, target)
        for path in policy.SYSTEM_PATHS
        if os.path.islink(path) and not os.path.isabs(target := os.readlink(path)) and "/" not in path[1:]
    )
    linked = {path for path, _ in links}
    shown = policy.visible([c for c in candidates if c not in linked], secrets=secrets, hidden_above=(home,))
    return shown, links, secrets


def _candidates(settings: SandboxSettings, allow_commands: Sequence[Sequence[str]]) -> list[str]:
    """System folders, the /etc entries commands need, the PATH's folders and the installations of the allowed
    commands (a Python's prefix holds its standard library), and what the config adds."""
    found = [*policy.SYSTEM_PATHS, *(f"/etc/{entry}" for entry in policy.ETC_ENTRIES)]
    found += [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    for prefix in allow_commands:
        if not prefix:
            continue
        located = shutil.which(prefix[0])
        if located is None:
            continue
        for executable in (os.path.abspath(located), os.path.realpath(located)):
            found += [os.path.dirname(executable), policy.prefix_of(executable)]
    found += [sys.base_prefix, sys.prefix]
    return [*found, *settings.read_only_paths]


def _kubeconfigs() -> tuple[str, ...]:
    paths = os.environ.get("KUBECONFIG", "").split(os.pathsep)
    return tuple(os.path.abspath(path) for path in paths if path)


async def _version(tool: str) -> str | None:
    try:
        ran = await process.execute([tool, "--version"], cwd="/", env={}, time_limit=PROBE_TIMEOUT, keep=4096)
    except OSError:
        return None
    words = ran.output.decode(errors="replace").split()
    return words[-1] if ran.returncode == 0 and words else None


async def _probe(candidate: Sandbox) -> str | None:
    """Start `true` in the sandbox from a throwaway workspace; None when it ran, else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="foreman-probe-") as top:
        workspace, home = Path(top) / "work", Path(top) / "home"
        workspace.mkdir()
        home.mkdir()
        try:
            ran = await candidate.run(
                ["true"], workspace=workspace, home=home, env={"PATH": "/usr/bin:/bin"}, time_limit=PROBE_TIMEOUT,
                keep=4096,
            )  # fmt: skip
        except OSError as error:
            return str(error)
    if ran.returncode == 0:
        return None
    lines = ran.output.strip().splitlines()
    return lines[-1] if lines else f"exit {ran.returncode}"


_found: dict[str, Sandbox] = {}


async def shared(
    settings: SandboxSettings, *, allow_commands: Sequence[Sequence[str]], workspace_root: str | None
) -> Sandbox:
    """The node's sandbox for these settings, found once per process: the worker asks at start (its FleetNode and
    log say what it found), each agent task asks again and gets the same."""
    key = repr((SandboxSettings.model_validate(settings.model_dump()), allow_commands, workspace_root))
    if key not in _found:
        _found[key] = await detect(settings, allow_commands=allow_commands, workspace_root=workspace_root)
    return _found[key]
