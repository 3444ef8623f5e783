from pathlib import Path

from foreman.cli.daemons import worker_config


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
