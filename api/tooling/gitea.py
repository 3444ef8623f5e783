"""A real Gitea on this machine, for the pull-request tests and `foreman demo`: built by tests/servers/build-gitea.sh
(`make gitea`), started on a free port with a fresh work dir (sqlite, no SSH, no mail, offline), an admin user, a
token made through its API, and repositories made on demand. Gitea refuses to run as root: as root, its files are
hard-linked into a folder owned by `nobody` and it runs as that user (setpriv). `missing()` says why it cannot run
where it is not built. Blocking calls (urllib, subprocess): for fixtures and the demo, never a daemon's loop."""

from __future__ import annotations

import base64
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foreman.api.tooling.localcluster.cluster import cache_dir, free_port, unbuilt

VERSION = "1.27.3"
USER = "foreman"
START_TIMEOUT = 120.0
UNPRIVILEGED = 65534
"""The uid (and gid) Gitea runs as when the tests run as root: `nobody` on Debian and most others."""


def home() -> Path:
    return cache_dir() / f"gitea-v{VERSION}"


def missing() -> str | None:
    """Why the real Gitea cannot run here (None: it can)."""
    if why := unbuilt(home(), ("gitea", "options/locale"), "gitea", "gitea"):
        return why
    if os.getuid() == 0 and not shutil.which("setpriv"):
        return "gitea refuses root and setpriv (util-linux) is not installed to run it as another user"
    return None


@dataclass(frozen=True)
class Gitea:
    url: str
    """Its root, e.g. http://127.0.0.1:PORT (the API is under /api/v1)."""
    user: str
    token: str
    """The admin user's API token (scopes: repository, user)."""
    work: Path
    log: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One call to its v1 API as the admin user: the decoded answer (None for 204)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}", data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def repository(self, name: str) -> str:
        """A new repository with one commit on `main` (a README); its HTTP clone URL."""
        made = self.api("POST", "/user/repos", {"name": name, "auto_init": True, "default_branch": "main"})
        return str(made["clone_url"])

    def hosted(self, name: str, local: Path) -> str:
        """The `main` branch of the local repository pushed to a new private repository `name` (the worker clones
        it with the token of its config); its clone URL, which carries no credentials."""
        self.api("POST", "/user/repos", {"name": name, "auto_init": False, "default_branch": "main", "private": True})
        url = f"{self.url}/{self.user}/{name}.git"
        header = f"http.extraHeader=Authorization: token {self.token}"
        subprocess.run(["git", "-C", str(local), "-c", header, "push", "--quiet", url, "main"], check=True,
                       capture_output=True)  # fmt: skip
        # NB: Gitea takes in a push in the background; until then the repository reads as empty (and 404s its pulls)
        deadline = time.monotonic() + START_TIMEOUT
        while self.api("GET", f"/repos/{self.user}/{name}")["empty"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"gitea never took in the push to {name}")
            time.sleep(0.02)
        return url

    def pulls(self, name: str, state: str = "all") -> list[dict[str, Any]]:
        answer = self.api("GET", f"/repos/{self.user}/{name}/pulls?state={state}&limit=50")
        return list(answer)


@contextmanager
def running() -> Iterator[Gitea]:
    """Gitea in a fresh folder; the folder and the process are gone after."""
    work = Path(tempfile.mkdtemp(prefix="foreman-gitea-"))
    try:
        as_user = _prepare(work)
        port = free_port()
        config = work / "app.ini"
        config.write_text(_config(work, port))
        _own(work)
        binary = str(work / "gitea")
        _gitea(as_user, work, binary, "migrate", "-c", str(config))
        password = secrets.token_urlsafe(16)
        admin = ["--admin", "--username", USER, "--password", password, "--email", f"{USER}@example.invalid"]
        admin.append("--must-change-password=false")
        _gitea(as_user, work, binary, "admin", "user", "create", "-c", str(config), *admin)
        log = work / "web.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*as_user, binary, "web", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=_environment(work), cwd=work,
            )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, process, log)
            token = _token(url, password)
            yield Gitea(url, USER, token, work, log)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prepare(work: Path) -> list[str]:
    """The built files in `work` (hard links where they can be), and the argv prefix that runs Gitea as a user it
    accepts: as root, `nobody` (the cache under /root is not reachable by it, hence the links)."""
    for entry in home().iterdir():
        target = work / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(target))
    if os.getuid() != 0:
        return []
    return ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups", "--"]


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _own(work: Path) -> None:
    if os.getuid() != 0:
        return
    uid = gid = UNPRIVILEGED
    for folder, dirs, names in os.walk(work):
        os.chown(folder, uid, gid)
        for name in (*dirs, *names):
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def _environment(work: Path) -> dict[str, str]:
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {"PATH": path, "HOME": str(work), "USER": _run_user(), "GITEA_WORK_DIR": str(work)}


def _run_user() -> str:
    """The name Gitea finds for the user it runs as (it must equal RUN_USER)."""
    return pwd.getpwuid(UNPRIVILEGED if os.getuid() == 0 else os.getuid()).pw_name


def _gitea(as_user: list[str], work: Path, binary: str, *args: str) -> None:
    done = subprocess.run([*as_user, binary, *args], capture_output=True, env=_environment(work), cwd=work,
                          timeout=START_TIMEOUT, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"gitea {args[0]} exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]!r}")


def _config(work: Path, port: int) -> str:
    user = _run_user()
    return f"""APP_NAME = foreman-test
RUN_USER = {user}
RUN_MODE = prod
WORK_PATH = {work}

[database]
DB_TYPE = sqlite3
PATH = {work}/data/gitea.db

[repository]
ROOT = {work}/repositories
DEFAULT_BRANCH = main

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:{port}/
OFFLINE_MODE = true
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false
APP_DATA_PATH = {work}/data
STATIC_ROOT_PATH = {work}

[security]
INSTALL_LOCK = true
SECRET_KEY = {secrets.token_hex(32)}
INTERNAL_TOKEN = {_internal_token()}

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true

[mailer]
ENABLED = false

[cron]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = {work}/log
"""


def _internal_token() -> str:
    """A JWT-shaped secret, as `gitea generate secret INTERNAL_TOKEN` makes (Gitea only checks that it is set)."""
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    return f"{head}.{secrets.token_urlsafe(32)}.{secrets.token_urlsafe(32)}"


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gitea exited {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/version", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # NB: polling a starting server, bounded by START_TIMEOUT
    raise RuntimeError(f"gitea not ready within {START_TIMEOUT:g} s: {log.read_text(errors='replace')[-2000:]}")


def _token(url: str, password: str) -> str:
    """An API token for the admin user, made through the API with its password (basic auth, as the docs say)."""
    basic = base64.b64encode(f"{USER}:{password}".encode()).decode()
    body = json.dumps({"name": "foreman-tests", "scopes": ["write:repository", "write:user"]}).encode()
    request = urllib.request.Request(
        f"{url}/api/v1/users/{USER}/tokens", data=body, method="POST",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return str(json.loads(answer.read())["sha1"])
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"gitea refused a token: {error.code} {error.read()[:500]!r}") from None
