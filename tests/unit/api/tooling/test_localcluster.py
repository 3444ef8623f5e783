"""Which kube-apiserver release the local control plane runs, and the one-line errors when it cannot be built."""

import re
import subprocess
from pathlib import Path

import pytest

from foreman.api.tooling.localcluster import LocalCluster, PrerequisiteMissing, ensure_apiserver
from foreman.api.tooling.localcluster.cluster import (
    BUILD_SCRIPT,
    FLOOR_RELEASE,
    GO_MODULE,
    current_release,
    resolve_release,
)

ROOT = Path(__file__).parents[4]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("FOREMAN_KUBE_APISERVER", raising=False)
    (tmp_path / "foreman").mkdir()
    return tmp_path / "foreman"


def test_the_current_release_is_the_one_our_go_module_pins_with_every_staging_module_at_its_v0() -> None:
    release = current_release()
    assert re.fullmatch(r"1\.3\d\.\d+", release)
    text = GO_MODULE.read_text()
    staging = re.findall(r"^\s*(k8s\.io/\S+) => (k8s\.io/\S+) (v\S+)$", text, re.MULTILINE)
    assert {"k8s.io/api", "k8s.io/apimachinery", "k8s.io/apiserver", "k8s.io/client-go"} <= {s[0] for s in staging}
    assert all(old == new and version == "v0." + release[2:] for old, new, version in staging)
    assert (GO_MODULE.parent / "go.sum").read_text().count(f"k8s.io/kubernetes v{release} ") == 1


def test_the_makefile_floor_is_the_floor_the_code_knows() -> None:
    assert f"KUBERNETES_FLOOR := {FLOOR_RELEASE}\n" in (ROOT / "Makefile").read_text()


def test_releases_a_user_may_name(cache: Path) -> None:
    assert resolve_release(None) == current_release()
    assert resolve_release("") == current_release()
    assert resolve_release("1.20") == FLOOR_RELEASE
    assert resolve_release("v1.20.2") == FLOOR_RELEASE
    assert resolve_release(current_release().rsplit(".", 1)[0]) == current_release()
    assert resolve_release("1.34.4") == "1.34.4"  # built on first use
    for name in ("kube-apiserver-v1.33.2", "kube-apiserver-v1.33.10"):
        (cache / name).touch()
    assert resolve_release("1.33") == "1.33.10"  # the newest cached patch release
    with pytest.raises(PrerequisiteMissing, match=r"no kube-apiserver 1\.31\.x is built; name a full release"):
        resolve_release("1.31")
    with pytest.raises(PrerequisiteMissing, match="not a Kubernetes release: 'latest'"):
        resolve_release("latest")


def test_a_cached_binary_is_used_without_building(cache: Path) -> None:
    binary = cache / f"kube-apiserver-v{current_release()}"
    binary.touch(mode=0o755)
    assert ensure_apiserver(release=None) == binary


def test_the_floor_binary_cached_under_its_old_name_is_still_found(cache: Path) -> None:
    (cache / "kube-apiserver").touch(mode=0o755)
    assert ensure_apiserver(release="1.20") == cache / "kube-apiserver"


def test_without_go_building_the_current_release_fails_with_one_line(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PrerequisiteMissing) as caught:
        ensure_apiserver(release=None)
    assert "`go` is not on PATH" in str(caught.value)
    assert "\n" not in str(caught.value)


def _path_without_go(tmp_path: Path, go_version: str | None) -> str:
    """A PATH with every command of this machine but `go` (or a `go` that says it is `go_version`)."""
    farm = tmp_path / "bin"
    farm.mkdir(parents=True)
    for folder in ("/usr/local/bin", "/usr/sbin", "/usr/bin"):
        for tool in Path(folder).iterdir() if Path(folder).is_dir() else ():
            if tool.name != "go" and not (farm / tool.name).exists():
                (farm / tool.name).symlink_to(tool)
    if go_version:
        (farm / "go").write_text(f"#!/bin/sh\necho go{go_version}\n")
        (farm / "go").chmod(0o755)
    return str(farm)


def _build(tmp_path: Path, path: str, release: str) -> subprocess.CompletedProcess[str]:
    cache = tmp_path / "cache"
    env = {"PATH": path, "HOME": str(tmp_path)}
    return subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(cache), release],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_build_script_says_in_one_line_what_is_missing(tmp_path: Path) -> None:
    # etcd and openssl are found (or installed) first; a PATH without go then stops the build at once.
    go = re.search(r"^go (\S+)$", GO_MODULE.read_text(), re.MULTILINE)
    assert go
    release = current_release()
    done = _build(tmp_path, _path_without_go(tmp_path, None), release)
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        [f"error: `go` not found: kube-apiserver v{release} is built with Go {go[1]} or newer"],
    )
    bad = _build(tmp_path, _path_without_go(tmp_path / "again", None), "1.x")
    assert (bad.returncode, bad.stderr) == (
        2,
        f"error: not a Kubernetes release: '1.x' (want e.g. {release} or 1.20.2)\n",
    )


def test_the_build_script_refuses_a_go_too_old_for_the_release(tmp_path: Path) -> None:
    farm = _path_without_go(tmp_path, "1.19.8")  # Debian bookworm's golang-go
    done = _build(tmp_path, farm, current_release())
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: kube-apiserver v{current_release()} is built with Go ")
    assert done.stderr.endswith(f"`go` on PATH ({farm}/go) is 1.19.8\n")


def test_an_older_release_is_not_started_on_a_newer_ones_data(cache: Path, tmp_path: Path) -> None:
    state = tmp_path / "dev"
    state.mkdir()
    LocalCluster(state_dir=state, kubernetes=current_release()).save()  # as `foreman dev up` left it
    with pytest.raises(PrerequisiteMissing, match=f"holds the data of Kubernetes v{current_release()}, which v1.20.2"):
        LocalCluster.start(state, kubernetes="1.20")
    assert sorted(p.name for p in state.iterdir()) == ["state.json"]  # nothing started, nothing written
