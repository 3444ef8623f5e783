import asyncio
import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

from foreman.api.models.tasks import AgenticTask
from foreman.worker.config import WorkerConfig
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.executors.base import ContractViolation, ExecutionContext, Executor, InferenceServer, hooks
from foreman.worker.executors.command import CommandExecutor, result_from
from foreman.worker.executors.stub import StubExecutor
from foreman.worker.offering import NodeOffer

PLUGIN = Path(__file__).parents[3] / "examples" / "executor-plugin"
TASK = AgenticTask.model_validate(
    {"metadata": {"name": "t", "namespace": "n"}, "spec": {"kind": "review", "payload": {"prompt": "abc"}}}
)
CONTEXT = ExecutionContext("node-1", 0)


def echo_plugin() -> type[Executor]:
    declared = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]["entry-points"]["foreman.executors"]
    assert declared == {"echo": "foreman_echo:EchoExecutor"}
    spec = importlib.util.spec_from_file_location("foreman_echo", PLUGIN / "foreman_echo" / "__init__.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["foreman_echo"] = module
    spec.loader.exec_module(module)
    plugin: type[Executor] = module.EchoExecutor
    return plugin


def test_example_plugin_declares_its_entry_point_and_keeps_the_contract() -> None:
    executor = echo_plugin()()
    assert isinstance(executor, Executor)
    envelope = asyncio.run(executor.execute(TASK, CONTEXT))
    assert (envelope.verdict, envelope.summary, envelope.kind) == ("GO", "cba", "review")


def test_the_node_offers_the_plugin_through_its_hooks_alone() -> None:
    """The worker knows no executor by name: the plug-in's own is_configured decides, the defaults say the rest."""
    echo = echo_plugin()
    executors = {"echo": echo(), "stub": StubExecutor(), "command": CommandExecutor()}
    offered = NodeOffer(executors, WorkerConfig(node_name="n")).current()
    assert offered.executors == ["echo", "stub"]  # command has no argv configured
    off = WorkerConfig(node_name="n", executors={"echo": {"enabled": False}, "command": {"argv": ["true"]}})
    assert NodeOffer(executors, off).current().executors == ["command", "stub"]
    echo_hooks = hooks(echo())
    assert echo_hooks.inference_server({}) is None
    assert asyncio.run(echo_hooks.confinement({})) is None


def test_an_executor_on_a_model_server_is_offered_only_while_it_answers() -> None:
    settings = {"endpoint": "http://127.0.0.1:9/v1", "modelAliases": {"coder": "coder.gguf"}}
    config = WorkerConfig(node_name="n", executors={"agent": settings})
    offer = NodeOffer({"agent": AgentExecutor(), "stub": StubExecutor()}, config)
    assert hooks(AgentExecutor()).inference_server(settings) == InferenceServer(
        "http://127.0.0.1:9/v1", None, {"coder": "coder.gguf"}
    )
    assert offer.current().executors == ["stub"]  # not asked yet
    asyncio.run(offer.check())  # nothing listens on port 9
    offered = offer.current()
    assert offered.executors == ["stub"]
    assert offered.inference is not None
    assert not offered.inference.ready
    assert offer.model_context("stub", None) is None
    assert offer.model_context("agent", "coder") is not None


def test_only_configured_executors_are_advertised() -> None:
    assert hooks(StubExecutor()).is_configured({})
    assert not hooks(CommandExecutor()).is_configured({})
    assert hooks(CommandExecutor()).is_configured({"argv": ["true"]})


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
