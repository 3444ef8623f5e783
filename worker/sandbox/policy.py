"""What a confined command may see and how far it may go, as pure functions of plain data.

The shape follows the coding agents that confine model-written commands (Codex CLI, Anthropic's sandbox-runtime):
the system read-only, the workspace and the agent's HOME writable, a private /tmp, everything else absent (the
repository's git folder included: it lives beside the workspace, foreman.worker.agent.git); own pid, network, ipc
and uts namespaces; no capabilities; limits on CPU, memory, processes, file size and open files. The I/O side
(`foreman.worker.sandbox.sandbox`) finds paths and probes tools; everything here is data in, argv or profile text
out.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from pydantic import Field

from foreman.api.models.base import Model

SandboxMode = Literal["auto", "bubblewrap", "seatbelt", "none"]
SandboxKind = Literal["bubblewrap", "seatbelt", "none"]
Network = Literal["none", "host"]
MIB = 1024 * 1024

SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Read-only in every sandbox (absent ones are skipped): programs and their libraries."""
ETC_ENTRIES = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "crypto-policies", "debian_version", "host.conf",
    "hosts", "group", "inputrc", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias", "locale.conf",
    "localtime", "mime.types", "nsswitch.conf", "os-release", "passwd", "pki", "protocols", "python3", "resolv.conf",
    "services", "ssl", "timezone",
)  # fmt: skip
"""What of /etc commands need (names, certificates, the dynamic linker, time zones); never all of it: /etc holds
/etc/shadow, /etc/kubernetes/admin.conf on a kubeadm node, and the system git config with its credential helpers."""
HOME_SECRETS = (
    ".ssh", ".kube", ".foreman", ".config", ".docker", ".aws", ".azure", ".gnupg", ".netrc", ".git-credentials",
    ".gitconfig", ".npmrc", ".pypirc", ".cargo/credentials", ".cargo/credentials.toml", ".local/share/keyrings",
)  # fmt: skip
"""Under the worker's HOME: never visible, whatever a read-only path asks for."""
HOST_SECRETS = ("/var/run/secrets", "/run/secrets", "/etc/kubernetes", "/etc/foreman", "/proc", "/sys")
"""Never bound from the host (the sandbox gets its own /proc, and no /sys)."""


class CommandLimits(Model):
    """`executors.agent.limits`: what one command may use (every process it starts counted together)."""

    model_config = Model.model_config | {"extra": "forbid"}

    cpu_seconds: int = Field(default=600, ge=1)
    """CPU time of the command (the wall time is the `run` tool's timeout)."""
    memory_mib: int = Field(default=2048, ge=16, alias="memoryMiB")
    """Memory of the command and its children (a cgroup where the worker may make one, else its address space)."""
    processes: int = Field(default=256, ge=8)
    """Processes and threads alive at once."""
    file_size_mib: int = Field(default=1024, ge=1, alias="fileSizeMiB")
    """Largest file the command may write."""
    open_files: int = Field(default=1024, ge=16)


@dataclass(frozen=True)
class Confinement:
    """One command's view of the host: what is bound where, and whether it has a network."""

    workspace: str
    home: str
    read_only: tuple[str, ...]
    """Host paths visible read-only at the same place (missing ones are skipped by bwrap's --ro-bind-try)."""
    links: tuple[tuple[str, str], ...] = ()
    """Host paths that are symbolic links (/bin -> usr/bin on a merged /usr), made again as links: one mount less."""
    network: Network = "none"


def home_secrets(home: str) -> tuple[str, ...]:
    return tuple(str(PurePosixPath(home) / name) for name in HOME_SECRETS)


def visible(candidates: Iterable[str], *, secrets: Sequence[str], hidden_above: Sequence[str]) -> tuple[str, ...]:
    """The candidate paths that may be bound read-only: none that is, holds or lies in a secret (the workspaces'
    root among them: every other task's workspace), and none that holds or is a `hidden_above` path (the worker's
    HOME: a toolchain in a subfolder of it is fine, HOME itself is not). Absolute paths only, each once, in the
    order given, less those that lie in one chosen before."""
    chosen: list[str] = []
    for candidate in candidates:
        if not candidate.startswith("/"):
            continue
        path = PurePosixPath("/" + candidate.lstrip("/"))  # NB: POSIX keeps a leading "//" apart from "/"
        if ".." in path.parts or str(path) in chosen:
            continue
        if any(_related(path, PurePosixPath(secret)) for secret in secrets):
            continue
        if any(_holds(path, PurePosixPath(top)) for top in hidden_above):
            continue
        chosen.append(str(path))
    # NB: a bind is recursive: what lies in another chosen path is there already
    return tuple(p for p in chosen if not any(PurePosixPath(o) in PurePosixPath(p).parents for o in chosen))


def _holds(outer: PurePosixPath, inner: PurePosixPath) -> bool:
    return outer == inner or outer in inner.parents


def _related(one: PurePosixPath, other: PurePosixPath) -> bool:
    return _holds(one, other) or _holds(other, one)


def prefix_of(executable: str) -> str:
    """The installation a program belongs to: `/opt/py/bin/python3` -> `/opt/py` (its libraries sit beside bin/)."""
    path = PurePosixPath(executable)
    return str(path.parent.parent if path.parent.name in ("bin", "sbin", "shims") else path.parent)


def bwrap_argv(bwrap: str, confinement: Confinement) -> list[str]:
    """bubblewrap's options for one command (the command follows `--`). NB: no --setenv: values on bwrap's command
    line show in /proc/PID/cmdline; the command's environment is bwrap's own, which the caller sets clean."""
    argv = [
        bwrap,
        "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "foreman-sandbox",
    ]  # fmt: skip
    if confinement.network == "none":
        argv.append("--unshare-net")
    for path, target in confinement.links:
        argv += ["--symlink", target, path]
    for path in confinement.read_only:
        argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    argv += ["--bind", confinement.home, confinement.home, "--bind", confinement.workspace, confinement.workspace]
    argv += ["--chdir", confinement.workspace, "--"]
    return argv


SEATBELT_PROFILE = """\
(version 1)
(deny default)
(allow process-exec process-fork)
(allow signal (target same-sandbox))
(allow sysctl-read)
(allow mach-lookup (global-name "com.apple.system.opendirectoryd.libinfo") (global-name "com.apple.trustd.agent"))
(allow file-read-metadata)
(allow file-read* (literal "/") (literal "/dev/null") (literal "/dev/urandom") (literal "/dev/random")
  (subpath "/usr") (subpath "/bin") (subpath "/sbin") (subpath "/System") (subpath "/Library/Apple")
  (subpath "/Library/Developer/CommandLineTools") (subpath "/private/etc") (subpath "/Applications/Xcode.app")
  (subpath "/private/var/db/timezone") (subpath "/opt/homebrew") (subpath "/usr/local"))
(allow file-write-data (literal "/dev/null"))
(allow file-read* file-write* (subpath (param "WORKSPACE")) (subpath (param "HOME")) (subpath (param "TMPDIR")))
"""


def seatbelt_profile(confinement: Confinement) -> tuple[str, list[str]]:
    """macOS sandbox-exec's profile and its `-D` parameters (paths go in as parameters, never spliced into the
    profile's text). Deny by default: the system and toolchains readable, the workspace, HOME and a private
    temporary folder writable, no network unless `host`. NB: untested on a real Mac."""
    lines = [SEATBELT_PROFILE]
    parameters = ["-D", f"WORKSPACE={confinement.workspace}", "-D", f"HOME={confinement.home}"]
    parameters += ["-D", f"TMPDIR={confinement.home}/tmp"]
    for index, path in enumerate(confinement.read_only):
        lines.append(f'(allow file-read* (subpath (param "READ_{index}")))\n')
        parameters += ["-D", f"READ_{index}={path}"]
    if confinement.network == "host":
        lines.append("(allow network*)\n")
    else:
        lines.append('(allow network* (local ip "localhost:*") (remote ip "localhost:*"))\n')
    return "".join(lines), parameters


@dataclass(frozen=True)
class Enforcement:
    """How each limit is enforced on this node: by a cgroup (the whole command), an rlimit (each process), or not."""

    cgroup: bool
    rlimits: bool

    def of(self, limit: str) -> str | None:
        if self.cgroup and limit in ("memory", "processes"):
            return "cgroup"
        return "rlimit" if self.rlimits else None


def prlimit_argv(prlimit: str, limits: CommandLimits, enforcement: Enforcement) -> list[str]:
    """util-linux prlimit's options (the command follows `--`). Memory and processes are left to the cgroup where
    there is one: an address-space limit breaks runtimes that reserve more than they use (Go, the JVM, V8)."""
    argv = [prlimit, f"--cpu={limits.cpu_seconds}", f"--fsize={limits.file_size_mib * MIB}"]
    argv.append(f"--nofile={limits.open_files}")
    if not enforcement.cgroup:
        argv += [f"--as={limits.memory_mib * MIB}", f"--nproc={limits.processes}"]
    return [*argv, "--"]


SHELL_ULIMIT = 'ulimit -t "$1" -f "$2" -n "$3" -u "$4" || exit 125; shift 4; exec "$@"'


def ulimit_argv(limits: CommandLimits) -> list[str]:
    """The same limits through /bin/sh's ulimit, where there is no prlimit (macOS). NB: POSIX sh counts -f in
    512-byte blocks; macOS enforces no address-space limit."""
    blocks = limits.file_size_mib * MIB // 512
    return ["/bin/sh", "-c", SHELL_ULIMIT, "sh", str(limits.cpu_seconds), str(blocks), str(limits.open_files),
            str(limits.processes)]  # fmt: skip


JOIN_CGROUPS = 'for procs; do [ "$procs" = -- ] && break; echo $$ > "$procs" || exit 125; shift; done; shift; exec "$@"'


def join_argv(procs: Sequence[str]) -> list[str]:
    """A shell that moves itself into the command's cgroups, then execs the rest: nothing the command starts can run
    before it is counted. The paths are arguments, never spliced into the script."""
    return ["/bin/sh", "-c", JOIN_CGROUPS, "foreman-sandbox", *procs, "--"]


@dataclass(frozen=True)
class Counters:
    """What the command's cgroup recorded (zero without one)."""

    oom_kills: int = 0
    pid_limit_hits: int = 0


FILE_TOO_LARGE = os.strerror(errno.EFBIG)
"""What a program prints when a write fails at the file size limit (Python ignores SIGXFSZ, so it is not killed)."""


def limit_hit(returncode: int | None, limits: CommandLimits, counters: Counters, output: str = "") -> str | None:
    """Which limit ended or hindered the command, in words for the model; None when none did."""
    if counters.oom_kills:
        return f"killed: memory limit {_size(limits.memory_mib)}"
    if _killed_by(returncode, signal.SIGXCPU):
        return f"killed: CPU limit {limits.cpu_seconds} s"
    if _killed_by(returncode, signal.SIGXFSZ):
        return f"killed: file size limit {_size(limits.file_size_mib)}"
    if returncode != 0 and FILE_TOO_LARGE in output:
        return f"file size limit {_size(limits.file_size_mib)} reached (a write was refused)"
    if counters.pid_limit_hits:
        return f"process limit {limits.processes} reached (further processes could not start)"
    return None


def _killed_by(returncode: int | None, sig: int) -> bool:
    """A signal's end as Python reports it (-N) or as a shell or bwrap passes it on (128 + N)."""
    return returncode is not None and returncode in (-sig, 128 + sig)


def _size(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"
