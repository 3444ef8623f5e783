"""`foreman worker install-service` and the shipped host units: rendered from one place, checked by the tools that
read them (systemd-analyze for the unit, plistlib for the launchd agent)."""

import plistlib
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foreman.api.tooling.services import LAUNCHD_LABEL, WorkerService, launchd_plist, shipped_files, systemd_unit
from foreman.cli.app import app

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def install(tmp_path: Path, *args: str) -> tuple[int, str]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = CliRunner().invoke(app, ["worker", "install-service", "--kubeconfig", str(kubeconfig), *args])
    return result.exit_code, result.output


def verify(unit: Path) -> str:
    """What systemd-analyze finds wrong with the unit ('' when nothing); it exits 0 even for lines it ignores."""
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False)
    return (done.stderr + ("" if done.returncode == 0 else f"exit {done.returncode}")).strip()


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_unit_written_for_this_host_runs_this_foreman_with_its_files_and_systemd_takes_it(tmp_path: Path) -> None:
    settings = tmp_path / "my settings.yaml"
    settings.write_text("node_name: box\nmax_concurrent: 2\n")
    code, output = install(tmp_path, "--config", str(settings), "-o", str(tmp_path / "user.service"))
    assert code == 0, output
    unit = (tmp_path / "user.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert Path(argv[0]).is_absolute()
    assert argv[1:] == ["worker", "--kubeconfig", str(tmp_path / "kubeconfig"), "--config", str(settings),
                        "--log-format", "json"]  # fmt: skip
    assert "User=" not in unit
    assert "WantedBy=default.target" in unit
    assert verify(tmp_path / "user.service") == ""

    code, output = install(tmp_path, "--system", "--run-as", "root", "-o", str(tmp_path / "system.service"))
    assert code == 0, output
    system = (tmp_path / "system.service").read_text()
    assert "User=root" in system
    assert "ProtectSystem=strict" in system
    assert "WantedBy=multi-user.target" in system
    assert verify(tmp_path / "system.service") == ""


def test_mistakes_are_said_before_any_service_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "worker.yaml"
    bad.write_text("nodename: box\n")
    code, output = install(tmp_path, "--config", str(bad), "-o", str(tmp_path / "x.service"))
    assert code == 2
    assert output.strip() == f"error: {bad}: unknown setting 'nodename' (did you mean node_name?)"
    assert not (tmp_path / "x.service").exists()
    result = CliRunner().invoke(app, ["worker", "install-service", "--kubeconfig", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "no kubeconfig at" in result.output
    assert "foreman node join NAME" in result.output


def test_the_launchd_agent_is_a_plist_that_restarts_the_worker_unless_it_drained(tmp_path: Path) -> None:
    code, output = install(tmp_path, "--macos", "-o", str(tmp_path / "agent.plist"))
    assert code == 0, output
    agent = plistlib.loads((tmp_path / "agent.plist").read_bytes())
    assert agent["Label"] == LAUNCHD_LABEL
    assert agent["ProgramArguments"][1:4] == ["worker", "--kubeconfig", str(tmp_path / "kubeconfig")]
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["RunAtLoad"] is True


def test_the_shipped_files_are_the_same_renderings_and_parse() -> None:
    shipped = shipped_files()
    unit = shipped["host/foreman-worker.service"]
    assert unit.endswith(
        systemd_unit(
            WorkerService("/usr/local/bin/foreman", "/etc/foreman/kubeconfig", "/etc/foreman/worker.yaml"),
            run_as="foreman",
            state_dir="/var/lib/foreman",
        )
    )
    agent = plistlib.loads(shipped["host/dev.foreman.worker.plist"].encode())
    assert agent["ProgramArguments"][:2] == ["/bin/sh", "-c"]
    assert 'exec "$HOME/.local/bin/foreman" worker' in agent["ProgramArguments"][2]
    assert launchd_plist(["x"], log="l").startswith("<?xml")
    for relative, text in shipped.items():
        assert (Path(__file__).parents[3] / "manifests" / relative).read_text() == text  # `make manifests` wrote it
