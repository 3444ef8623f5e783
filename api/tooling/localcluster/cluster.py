"""Start and stop etcd + kube-apiserver on free loopback ports, with static tokens for each of our identities.

There is no controller-manager, scheduler or kubelet: enough for CRDs, watches, RBAC, Leases and Events, which is all
Foreman needs. The apiserver binary is built once per release and cached (see build-kube-apiserver.sh): the current
release from the k8s.io/kubernetes Go module pinned in kube-apiserver/go.mod, the v1.20.2 floor from Debian's
Kubernetes source; etcd comes from Debian's etcd-server package.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import yaml

from foreman.api.tooling.prerequisites import PrerequisiteMissing

BUILD_SCRIPT = Path(__file__).with_name("build-kube-apiserver.sh")
GO_MODULE = Path(__file__).with_name("kube-apiserver") / "go.mod"
FLOOR_RELEASE = "1.20.2"
"""The oldest release we support and test: the one Debian bookworm ships as source (README, Kubernetes releases)."""
READY_TIMEOUT_S = 90.0
Progress = Callable[[str], None]


class Identity(StrEnum):
    """Who a token authenticates as; controller and worker match the ServiceAccounts bound in manifests/."""

    ADMIN = "admin"
    CONTROLLER = "controller"
    WORKER = "worker"
    PINNED_WORKER = "pinned-worker"
    """A worker with its own per-node identity for FleetNode `pinned` (manifests.pinned_worker_rbac("pinned"))."""
    NOBODY = "nobody"


USERS: dict[Identity, tuple[str, str]] = {
    Identity.ADMIN: ("foreman-admin", "system:masters"),
    Identity.CONTROLLER: (
        "system:serviceaccount:foreman-system:foreman-controller",
        "system:serviceaccounts,system:serviceaccounts:foreman-system,system:authenticated",
    ),
    Identity.WORKER: (
        "system:serviceaccount:foreman-system:foreman-worker",
        "system:serviceaccounts,system:serviceaccounts:foreman-system,system:authenticated",
    ),
    Identity.PINNED_WORKER: (
        "system:serviceaccount:foreman-system:foreman-worker-pinned",
        "system:serviceaccounts,system:serviceaccounts:foreman-system,system:authenticated",
    ),
    Identity.NOBODY: ("foreman-nobody", "system:authenticated"),
}


def cache_dir() -> Path:
    """Where built parts are kept (~/.cache/foreman): the Makefile's CACHE, an empty XDG_CACHE_HOME as unset."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "foreman"


def unbuilt(folder: Path, names: tuple[str, ...], what: str, target: str) -> str | None:
    """Why a part cached under `folder` cannot run (the first of `names` absent), naming the make target that builds
    it; None when all are there."""
    for name in names:
        if not (folder / name).exists():
            return f"{what} is not built ({folder / name} missing): run `make {target}`"
    return None


def current_release() -> str:
    """The release `foreman dev up`, the demo and the tests run by default: the one pinned in our Go module."""
    found = re.search(r"^\s*(?:require )?k8s\.io/kubernetes v(\S+)", GO_MODULE.read_text(), re.MULTILINE)
    assert found, f"{GO_MODULE} requires no k8s.io/kubernetes"
    return found[1]


def _cached(release: str) -> Path:
    return cache_dir() / f"kube-apiserver-v{release}"


def is_built(release: str) -> bool:
    """Whether `release`'s kube-apiserver is cached: what may run without minutes of building first (`make bench`
    adds the floor's column only then)."""
    legacy = release == FLOOR_RELEASE and (cache_dir() / "kube-apiserver").is_file()
    return _cached(release).is_file() or legacy


def resolve_release(wanted: str | None) -> str:
    """A full release (1.37.2) for what a user asked: nothing (the current one), 1.37.2, v1.34.4, or a minor (1.20:
    the floor, 1.37: the current one, another: the newest cached build of it)."""
    if not wanted:
        return current_release()
    release = wanted.removeprefix("v")
    if re.fullmatch(r"1\.\d+\.\d+", release):
        return release
    if not re.fullmatch(r"1\.\d+", release):
        raise PrerequisiteMissing(f"not a Kubernetes release: {wanted!r} (want e.g. {current_release()} or 1.20)")
    known = [r for r in (FLOOR_RELEASE, current_release()) if r.startswith(release + ".")]
    cached = sorted(
        (p.name.removeprefix("kube-apiserver-v") for p in cache_dir().glob(f"kube-apiserver-v{release}.*")),
        key=lambda r: int(r.rsplit(".", 1)[1]),
    )
    if not (known or cached):
        raise PrerequisiteMissing(
            f"no kube-apiserver {release}.x is built; name a full release to build one (e.g. {release}.0)"
        )
    return (known or cached)[-1]


def ensure_apiserver(progress: Progress = lambda _: None, release: str | None = None) -> Path:
    """Path of a cached kube-apiserver of `release` (default: the current one), building it first if needed (minutes,
    once per machine and release). FOREMAN_KUBE_APISERVER names a binary to use instead, whatever its release."""
    if override := os.environ.get("FOREMAN_KUBE_APISERVER"):
        return Path(override)
    release = resolve_release(release)
    binary = _cached(release)
    if release == FLOOR_RELEASE and not binary.exists() and (cache_dir() / "kube-apiserver").exists():
        binary = cache_dir() / "kube-apiserver"  # NB: cached under this name before releases were told apart
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if release == FLOOR_RELEASE and not shutil.which("apt-get"):
        raise PrerequisiteMissing(
            f"kube-apiserver v{release} is built from Debian's source package and this machine has no apt-get; "
            "set FOREMAN_KUBE_APISERVER to a kube-apiserver binary"
        )
    if release != FLOOR_RELEASE and not shutil.which("go"):
        raise PrerequisiteMissing(
            f"kube-apiserver v{release} is not built and `go` is not on PATH to build it (Go {_go_line()} or newer); "
            "set FOREMAN_KUBE_APISERVER to a kube-apiserver binary"
        )
    progress(f"building kube-apiserver v{release} into {binary.parent} (first run only, ~10 minutes)")
    process = subprocess.Popen(
        ["bash", str(BUILD_SCRIPT), str(binary.parent), release],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        tail = [*tail[-19:], line.rstrip()]
        if line.startswith("==>"):
            progress(line.rstrip())
    code = process.wait()
    if code == 2 and tail and tail[-1].startswith("error: "):
        raise PrerequisiteMissing(tail[-1].removeprefix("error: "))
    if code != 0:
        raise PrerequisiteMissing(f"building kube-apiserver v{release} failed:\n" + "\n".join(tail))
    return binary


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split("."))


def _go_line() -> str:
    found = re.search(r"^go (\S+)$", GO_MODULE.read_text(), re.MULTILINE)
    return found[1] if found else "?"


def free_port(wanted: int = 0) -> int:
    """`wanted` if it can be listened on now (0: any free port), else any free port."""
    with socket.socket() as sock:
        # NB: as the servers themselves listen (Go sets SO_REUSEADDR): a port whose last connections are in
        # TIME_WAIT after a stop is free for them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise PrerequisiteMissing(f"`{tool}` not found; install it with `apt-get install {package}`")
    return path


@dataclass
class LocalCluster:
    """One local control plane, its files under `state_dir`; the state is saved so `foreman dev down` can stop it."""

    state_dir: Path
    etcd_port: int = 0
    etcd_peer_port: int = 0
    apiserver_port: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    audit: bool = False
    kubernetes: str = ""
    """The release that runs (1.37.2), as asked at start; a state from before releases were told apart says ""."""

    # -- lifecycle -------------------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        state_dir: Path,
        *,
        audit: bool = False,
        kubernetes: str | None = None,
        progress: Progress = lambda _: None,
    ) -> LocalCluster:
        """Start etcd and kube-apiserver of release `kubernetes` (default: the current one), wait until ready and write
        kubeconfigs.

        A state dir that ran a control plane before gets its ports and tokens again (while the ports are free), so
        daemons and kubeconfigs from before `foreman dev down` reach the new one; otherwise free ports, new tokens.
        """
        release = resolve_release(kubernetes)
        before = cls.load(state_dir) or cls(state_dir=state_dir)
        if before.kubernetes and _release_key(release) < _release_key(before.kubernetes):
            # NB: an apiserver never reads what a newer one stored (storage versions move forward only)
            raise PrerequisiteMissing(
                f"{state_dir} holds the data of Kubernetes v{before.kubernetes}, which v{release} cannot read; "
                "use another --state-dir, or `foreman dev down --purge` first"
            )
        apiserver = ensure_apiserver(progress, release)
        state_dir.mkdir(parents=True, exist_ok=True)
        cluster = cls(
            state_dir=state_dir,
            etcd_port=free_port(before.etcd_port),
            etcd_peer_port=free_port(before.etcd_peer_port),
            apiserver_port=free_port(before.apiserver_port),
            tokens=before.tokens or {identity.value: secrets.token_hex(16) for identity in Identity},
            audit=audit,
            kubernetes=release,
        )
        if before.apiserver_port and cluster.apiserver_port != before.apiserver_port:
            progress(f"port {before.apiserver_port} is taken now: daemons started before must be restarted")
        cluster._write_credentials()
        progress(f"starting etcd on 127.0.0.1:{cluster.etcd_port}")
        cluster.start_etcd()
        progress(f"starting kube-apiserver v{release} on https://127.0.0.1:{cluster.apiserver_port}")
        cluster.start_apiserver(apiserver)
        try:
            cluster.wait_ready()
        except Exception:
            cluster.stop()
            raise
        for identity in Identity:
            cluster.write_kubeconfig(identity)
        cluster.save()
        return cluster

    @classmethod
    def load(cls, state_dir: Path) -> LocalCluster | None:
        state = state_dir / "state.json"
        if not state.exists():
            return None
        data = json.loads(state.read_text())
        return cls(**{**data, "state_dir": Path(data["state_dir"])})

    def save(self) -> None:
        """NB: the state holds every identity's bearer token, so only its owner may read it (as the kubeconfigs)."""
        write_private(self.state_dir / "state.json", json.dumps({**asdict(self), "state_dir": str(self.state_dir)}))

    def start_etcd(self) -> None:
        etcd = _require("etcd", "etcd-server")
        url = f"http://127.0.0.1:{self.etcd_port}"
        self._spawn(
            "etcd",
            [
                etcd,
                "--data-dir", str(self.state_dir / "etcd"),
                "--listen-client-urls", url,
                "--advertise-client-urls", url,
                "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
                "--unsafe-no-fsync",
            ],
        )  # fmt: skip

    def start_apiserver(self, binary: Path | None = None) -> None:
        binary = binary or ensure_apiserver(release=self.kubernetes or None)
        args = [
            str(binary),
            "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
            "--bind-address", "127.0.0.1",
            "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.apiserver_port),
            "--cert-dir", str(self.state_dir / "certs"),
            "--token-auth-file", str(self.state_dir / "tokens.csv"),
            "--authorization-mode", "RBAC",
            "--service-account-key-file", str(self.state_dir / "sa.key"),
            "--service-account-signing-key-file", str(self.state_dir / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--disable-admission-plugins", "ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type", "none",
        ]  # fmt: skip
        if self.audit:
            args += [
                "--audit-policy-file", str(self._write_audit_policy()),
                "--audit-log-path", str(self.audit_log),
                "--audit-log-format", "json",
            ]  # fmt: skip
        self._spawn("apiserver", args)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        context = ssl._create_unverified_context()  # NB: the apiserver's self-signed certificate, on loopback only
        request = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.tokens[Identity.ADMIN]}"}
        )
        while time.monotonic() < deadline:
            for name in ("etcd", "apiserver"):
                if not self.running(name):
                    log = self.state_dir / f"{name}.log"
                    tail = log.read_text().splitlines()[-15:] if log.exists() else []
                    raise PrerequisiteMissing(f"{name} exited during start-up:\n" + "\n".join(tail))
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.read() == b"ok":
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"kube-apiserver not ready after {timeout:.0f} s (see {self.state_dir}/apiserver.log)")

    def stop_process(self, name: str, timeout: float = 15.0) -> None:
        pid = self.pids.pop(name, None)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)

    def stop(self) -> None:
        """Stop both processes; the state is kept (without pids) so the next start reuses its ports and tokens."""
        self.stop_process("apiserver")
        self.stop_process("etcd")
        self.pids = {}
        if self.state_dir.exists():
            self.save()

    def running(self, name: str) -> bool:
        pid = self.pids.get(name)
        return pid is not None and _alive(pid)

    # -- files -----------------------------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    def kubeconfig(self, identity: Identity = Identity.ADMIN) -> Path:
        return self.state_dir / ("kubeconfig" if identity is Identity.ADMIN else f"kubeconfig-{identity.value}")

    def write_kubeconfig(self, identity: Identity) -> Path:
        name = f"foreman-dev-{identity.value}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "foreman-dev", "cluster": {"server": self.server, **self._trust()}}],
            "users": [{"name": name, "user": {"token": self.tokens[identity]}}],
            "contexts": [{"name": name, "context": {"cluster": "foreman-dev", "user": name, "namespace": "default"}}],
            "current-context": name,
        }
        path = self.kubeconfig(identity)
        write_private(path, yaml.safe_dump(config, sort_keys=False))
        return path

    def _trust(self) -> dict[str, str]:
        """The apiserver made itself a CA and a serving certificate at its first start (its --cert-dir keeps both,
        the CA last): kubeconfigs verify the server with that CA, so they can be handed on (`foreman node join`)."""
        chain = (self.state_dir / "certs" / "apiserver.crt").read_text()
        ca = "-----BEGIN CERTIFICATE-----" + chain.rsplit("-----BEGIN CERTIFICATE-----", 1)[-1]
        return {"certificate-authority-data": base64.b64encode(ca.encode()).decode()}

    def _write_credentials(self) -> None:
        (self.state_dir / "certs").mkdir(exist_ok=True)
        key = self.state_dir / "sa.key"
        if not key.exists():
            openssl = _require("openssl", "openssl")
            subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        lines = [f'{self.tokens[i.value]},{USERS[i][0]},{i.value},"{USERS[i][1]}"' for i in Identity]
        write_private(self.state_dir / "tokens.csv", "\n".join(lines) + "\n")

    def _write_audit_policy(self) -> Path:
        # NB: only writes to agentictasks, and reads, at Metadata level: enough to count API calls per task.
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {
                    "level": "Metadata",
                    "resources": [{"group": "foreman.dev", "resources": ["agentictasks", "agentictasks/status"]}],
                },
                {"level": "None"},
            ],
        }
        path = self.state_dir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path

    def _spawn(self, name: str, args: list[str]) -> None:
        with (self.state_dir / f"{name}.log").open("ab") as log:
            # NB: a new session, so the processes outlive `foreman dev up` and ignore the terminal's Ctrl-C.
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids[name] = process.pid


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited = 0  # not our child (another `foreman dev` invocation started it): ask the kernel instead
    else:
        if waited == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, from the first byte (no window in which it is world-readable)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # NB: an existing file keeps its mode through O_CREAT (a 0644 one from before)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
