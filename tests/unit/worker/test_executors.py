import asyncio
import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from foreman.api.models.resources import AgenticTask
from foreman.worker.executors.base import ContractViolation, ExecutionContext, Executor, is_configured
from foreman.worker.executors.command import CommandExecutor, result_from
from foreman.worker.executors.stub import StubExecutor

PLUGIN = Path(__file__).parents[3] / "examples" / "executor-plugin"
TASK = AgenticTask.model_validate(
    {"metadata": {"name": "t", "namespace": "n"}, "spec": {"kind": "review", "payload": {"prompt": "abc"}}}
)
CONTEXT = ExecutionContext("node-1", 0)


def test_example_plugin_declares_its_entry_point_and_keeps_the_contract() -> None:
    declared = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]["entry-points"]["foreman.executors"]
    assert declared == {"echo": "foreman_echo:EchoExecutor"}
    spec = importlib.util.spec_from_file_location("foreman_echo", PLUGIN / "foreman_echo" / "__init__.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["foreman_echo"] = module
    spec.loader.exec_module(module)
    executor = module.EchoExecutor()
    assert isinstance(executor, Executor)
    envelope = asyncio.run(executor.execute(TASK, CONTEXT))
    assert (envelope.verdict, envelope.summary, envelope.kind) == ("GO", "cba", "review")


def test_only_configured_executors_are_advertised() -> None:
    assert is_configured(StubExecutor(), {})
    assert not is_configured(CommandExecutor(), {})
    assert is_configured(CommandExecutor(), {"argv": ["true"]})


def test_command_result_from_exit_code_and_envelope_lines() -> None:
    assert result_from(TASK, 0, "hi\n", "", 0.1).verdict == "GO"
    assert result_from(TASK, 3, "", "boom", 0.1).verdict == "NO-GO"
    reported = result_from(
        TASK, 0, 'x\n{"schemaVersion": "foreman.v1", "kind": "review", "verdict": "GATE-FAIL"}\n', "", 0.1
    )
    assert reported.verdict == "GATE-FAIL"
    assert reported.extra["exitCode"] == 0
    with pytest.raises(ContractViolation, match="schemaVersion"):
        result_from(TASK, 0, '{"schemaVersion": "v2", "kind": "review", "verdict": "GO"}', "", 0.1)
