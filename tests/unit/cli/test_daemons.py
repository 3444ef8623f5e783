from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from foreman.api.tooling import manifests
from foreman.cli import daemons
from foreman.cli.app import app
from foreman.cli.daemons import worker_config
from foreman.controller.config import ControllerConfig
from foreman.controller.expiry import TimeToLive
from tests.fakekube import FakeApiserver, kube_over


def test_a_command_flag_keeps_the_files_other_executor_settings(tmp_path: Path) -> None:
    """`--command` sets one setting of one executor; plug-in settings from --config stay."""
    file = tmp_path / "worker.yaml"
    file.write_text(
        "executors:\n"
        "  command: {argv: [old], env: {A: '1'}}\n"
        "  agent: {endpoint: http://model:8000/v1}\n"
        "  myplugin: {depth: 3}\n"
    )
    config, _ = worker_config(file, {"node_name": "n", "overrides": {}, "executors": {"command": {"argv": ["new"]}}})
    assert config.executors == {
        "command": {"argv": ["new"], "env": {"A": "1"}},
        "agent": {"endpoint": "http://model:8000/v1"},
        "myplugin": {"depth": 3},
    }


def test_a_config_written_with_the_flags_names_sets_what_the_flags_set(tmp_path: Path) -> None:
    """A newcomer's worker.yaml used the flags' names; they were dropped in silence and a GPU box registered as a
    23.5 GB cpu node with no labels."""
    file = tmp_path / "worker.yaml"
    file.write_text(
        "accelerator: cuda\nram_gb: 96\ncontext_tokens: 131072\nmodel: qwen2.5-coder:32b\n"
        "label: [pool=gpu, zone=a]\nmax_concurrent: 2\nhealth_port: 9191\nllm_endpoint: http://127.0.0.1:8080/v1\n"
    )
    config, options = worker_config(file, {"overrides": {}, "executors": {}})
    assert config.overrides.accelerator == "cuda"
    assert (config.overrides.total_ramgb, config.overrides.available_ramgb) == (96, 96)
    assert (config.max_context_tokens, config.installed_models, config.max_concurrent_tasks) == (
        131072, ["qwen2.5-coder:32b"], 2,
    )  # fmt: skip
    assert config.labels == {"pool": "gpu", "zone": "a"}
    assert config.executors == {"agent": {"endpoint": "http://127.0.0.1:8080/v1"}}
    assert options == {"health_port": 9191}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("ram_gbb: 96\n", "unknown setting 'ram_gbb' (did you mean ram_gb?)"),
        ("maxConcurrentTask: 2\n", "unknown setting 'maxConcurrentTask' (did you mean maxConcurrentTasks?)"),
        ("overrides: {acelerator: cuda}\n", "overrides.acelerator"),
        ("label: [nokey]\n", "label wants key=value, got 'nokey'"),
    ],
)
def test_an_unknown_key_is_one_line_naming_it_and_the_nearest(tmp_path: Path, text: str, said: str) -> None:
    file = tmp_path / "worker.yaml"
    file.write_text(text)
    result = CliRunner().invoke(app, ["worker", "--config", str(file), "--check-sandbox"])
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_shipped_controller_keeps_a_success_a_day_and_a_failure_a_week(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployment's args are the flags as a user would type them; unset, a flag keeps tasks for ever."""
    started: list[ControllerConfig] = []

    async def serve(kubeconfig: str | None, health_port: int, make: Any) -> None:
        started.append(make(kube_over(FakeApiserver()))[0].config)

    monkeypatch.setattr(daemons, "serve", serve)
    args = manifests.controller_deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    for argv in (args, ["controller"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, result.output
    assert [config.ttl for config in started] == [
        TimeToLive(after_success=timedelta(days=1), after_failure=timedelta(days=7)),
        TimeToLive(),
    ]


def test_manifests_run_the_image_given_everywhere_a_container_is() -> None:
    result = CliRunner().invoke(app, ["manifests", "--with-workloads", "--with-dashboard", "--image", "reg.local/f:1"])
    assert result.exit_code == 0, result.output
    images = [line.split()[-1] for line in result.output.splitlines() if line.strip().startswith("image:")]
    assert images == ["reg.local/f:1"] * 4  # controller, worker, notifier, dashboard
    shipped = CliRunner().invoke(app, ["manifests", "--with-workloads"]).output
    assert f"image: {manifests.IMAGE}" in shipped
