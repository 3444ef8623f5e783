from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from foreman.api.tooling import manifests
from foreman.cli import daemons
from foreman.cli.daemons import worker_config
from foreman.cli.main import app
from foreman.controller.config import ControllerConfig
from foreman.controller.expiry import TimeToLive
from tests.fakekube import FakeKube


def test_a_command_flag_keeps_the_files_other_executor_settings(tmp_path: Path) -> None:
    """`--command` sets one setting of one executor; plug-in settings from --config stay (issue 17)."""
    file = tmp_path / "worker.yaml"
    file.write_text(
        "executors:\n"
        "  command: {argv: [old], env: {A: '1'}}\n"
        "  agent: {endpoint: http://model:8000/v1}\n"
        "  myplugin: {depth: 3}\n"
    )
    config = worker_config(file, {"node_name": "n", "overrides": {}, "executors": {"command": {"argv": ["new"]}}})
    assert config.executors == {
        "command": {"argv": ["new"], "env": {"A": "1"}},
        "agent": {"endpoint": "http://model:8000/v1"},
        "myplugin": {"depth": 3},
    }


def test_the_shipped_controller_keeps_a_success_a_day_and_a_failure_a_week(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployment's args are the flags as a user would type them; unset, a flag keeps tasks for ever."""
    started: list[ControllerConfig] = []

    async def serve(kubeconfig: str | None, health_port: int, make: Any) -> None:
        started.append(make(FakeKube())[0].config)

    monkeypatch.setattr(daemons, "serve", serve)
    args = manifests.controller_deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    for argv in (args, ["controller"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, result.output
    assert [config.ttl for config in started] == [
        TimeToLive(after_success=timedelta(days=1), after_failure=timedelta(days=7)),
        TimeToLive(),
    ]
