"""A cgroup per command, where the worker may make one: memory and processes counted over everything it starts.

cgroup v1 (`memory` and `pids` controllers), under the worker's own cgroup so the host's limits on the worker still
hold. Where the worker may not make one (an unprivileged worker on v1, or v2 without a delegated subtree) the
sandbox falls back to rlimits and the FleetNode says so. Small synchronous sysfs writes: callers run them in a
thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

from foreman.worker.sandbox.policy import MIB, CommandLimits, Counters

V1_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids")


def own_paths(proc_cgroup: str) -> dict[str, str]:
    """`/proc/self/cgroup` of cgroup v1: controller -> this process's path in its hierarchy."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


@dataclass(frozen=True)
class CgroupParent:
    """Where this worker makes its commands' cgroups: one folder per controller."""

    folders: tuple[Path, ...]

    @classmethod
    def find(cls, root: Path = V1_ROOT) -> CgroupParent | None:
        """The worker's own v1 memory and pids cgroups with a `foreman-sandbox` folder in each that it could make
        and write; None where it cannot."""
        try:
            paths = own_paths(Path("/proc/self/cgroup").read_text())
            folders = []
            for controller in CONTROLLERS:
                if controller not in paths or not (root / controller / "cgroup.procs").exists():
                    return None
                folder = root / controller / paths[controller].lstrip("/") / "foreman-sandbox"
                folder.mkdir(exist_ok=True)
                probe = folder / f"probe-{uuid.uuid4().hex[:8]}"
                probe.mkdir()
                probe.rmdir()
                folders.append(folder)
        except OSError:
            return None
        return cls(tuple(folders))

    def create(self, limits: CommandLimits) -> CommandCgroup:
        name = f"cmd-{uuid.uuid4().hex[:12]}"
        memory, pids = (folder / name for folder in self.folders)
        made = CommandCgroup(memory, pids)
        try:
            memory.mkdir()
            pids.mkdir()
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory_mib * MIB))
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():  # NB: else the command's memory goes on growing in swap
                swap.write_text(str(limits.memory_mib * MIB))
            (pids / "pids.max").write_text(str(limits.processes))
        except OSError:
            made.remove()
            raise
        return made


@dataclass(frozen=True)
class CommandCgroup:
    memory: Path
    pids: Path

    @property
    def procs(self) -> tuple[str, str]:
        return str(self.memory / "cgroup.procs"), str(self.pids / "cgroup.procs")

    def counters(self) -> Counters:
        oom = _field(self.memory / "memory.oom_control", "oom_kill")
        return Counters(oom_kills=oom, pid_limit_hits=_field(self.pids / "pids.events", "max"))

    def kill_all(self) -> None:
        """SIGKILL every process still in the command's cgroup (a setsid'd or double-forked one included), until
        none is left. NB: a process forking while we read is caught on the next round; pids.max bounds the rounds."""
        for _ in range(64):
            try:
                alive = [int(pid) for pid in (self.pids / "cgroup.procs").read_text().split()]
            except OSError:
                return
            if not alive:
                return
            for pid in alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        for folder in (self.memory, self.pids):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _field(path: Path, name: str) -> int:
    """A `name value` line of a cgroup file (memory.oom_control, pids.events); 0 when absent."""
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0
