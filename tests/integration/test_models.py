"""A model-aware fleet against the real apiserver: two workers, each on its own scripted model server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.models.agents import Agent
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.scripted_llm import Call, ScriptedLLM, Turn
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.executors.stub import StubExecutor
from tests.integration.helpers import condition, make_task, running_controller, running_worker, wait_for
from tests.servers.ollama import Ollama

PLUGINS = {"agent": AgentExecutor, "stub": StubExecutor}


def finished(task: AgenticTask) -> bool:
    return task.phase in ("Succeeded", "Failed")


def answer(chunk_delay: float = 0.0) -> Callable[[dict[str, Any]], Turn]:
    """Submits at once; `chunk_delay` sets how fast the tokens stream (what the worker measures)."""

    def reply(request: dict[str, Any]) -> Turn:
        summary = "done " + "x" * 200  # enough tokens for a speed to be measured
        return Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": summary})], chunk_delay=chunk_delay)

    return reply


def settings(llm: ScriptedLLM | Ollama, tmp_path: Path, **agent: Any) -> dict[str, Any]:
    return {
        "executors": {"agent": {"endpoint": llm.base_url, "workspaceRoot": str(tmp_path / "ws"), **agent}},
        "heartbeat_interval": 0.2,
        "max_concurrent_tasks": 2,
    }


async def node_matches(kube: Kube, name: str, predicate: Callable[[FleetNode], bool], timeout: float = 10) -> FleetNode:
    deadline = time.monotonic() + timeout
    while True:
        node = await kube.get(FleetNode, name)
        if predicate(node):
            return node
        assert time.monotonic() < deadline, f"{name} never matched: {node.status.model_dump(exclude_none=True)}"
        await asyncio.sleep(0.05)


async def test_tasks_go_where_their_model_is_and_wait_naming_a_model_nobody_serves(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    async with (
        ScriptedLLM(answer(), models=["qwen2.5-coder:32b", "llama3.1:8b"], context_tokens=32768) as big,
        ScriptedLLM(answer(), models=["coder-7b.gguf"], context_tokens=8192) as small,
        running_controller(kube, namespace),
        running_worker(kube, "big-box", namespace, PLUGINS, **settings(big, tmp_path)),
        running_worker(
            kube, "small-box", namespace, PLUGINS,
            **settings(small, tmp_path, modelAliases={"qwen2.5-coder:7b": "coder-7b.gguf"}),
        ),
    ):  # fmt: skip
        node = await node_matches(kube, "big-box", lambda n: len(n.status.capability.models) == 2)
        assert [(m.name, m.context_tokens) for m in node.status.capability.models] == [
            ("llama3.1:8b", 32768),
            ("qwen2.5-coder:32b", 32768),
        ]
        assert node.status.capability.installed_models == ["llama3.1:8b", "qwen2.5-coder:32b"]
        assert condition_of(node, "InferenceReady") == ("True", "ModelsListed")
        small_node = await kube.get(FleetNode, "small-box")
        assert [(m.name, m.aliases) for m in small_node.status.capability.models] == [
            ("coder-7b.gguf", ["qwen2.5-coder:7b"])
        ]

        await make_task(kube, namespace, "needs-32b", executor="agent", modelRef="qwen2.5-coder:32b",
                        payload={"prompt": "go"})  # fmt: skip
        await kube.create(Agent.model_validate({"metadata": {"name": "small", "namespace": namespace},
                                                "spec": {"model": "qwen2.5-coder:7b"}}))  # fmt: skip
        await make_task(kube, namespace, "by-agent", executor="agent", agentRef="small", payload={"prompt": "go"})
        await make_task(kube, namespace, "too-long", executor="agent", modelRef="qwen2.5-coder:7b",
                        requiredCapability={"minContextTokens": 16384}, payload={"prompt": "go"})  # fmt: skip
        await make_task(kube, namespace, "unknown", executor="agent", modelRef="mistral:7b", payload={"prompt": "go"})
        big_task = await wait_for(kube, namespace, "needs-32b", finished, timeout=20)
        small_task = await wait_for(kube, namespace, "by-agent", finished, timeout=20)
        assert (big_task.status.assigned_node, big_task.status.verdict) == ("big-box", "GO")
        assert (small_task.status.assigned_node, small_task.status.verdict) == ("small-box", "GO")
        assert small_task.status.usage is not None
        assert small_task.status.usage.model == "coder-7b.gguf"  # the alias resolved to what the server serves
        assert small.requests[-1]["model"] == "coder-7b.gguf"
        for name, model in (("unknown", "mistral:7b"), ("too-long", "qwen2.5-coder:7b")):
            waiting = await wait_for(kube, namespace, name, lambda t: condition(t, "Blocked") is not None)
            assert condition(waiting, "Blocked") == ("True", "NoFittingNode")
            blocked = next(c for c in waiting.status.conditions if c.type == "Blocked")
            assert f"model {model}" in blocked.message
            assert waiting.phase == "Pending"


def condition_of(node: FleetNode, type_: str) -> tuple[str, str] | None:
    found = next((c for c in node.status.conditions if c.type == type_), None)
    return (found.status, found.reason) if found else None


async def test_a_node_whose_model_server_stops_gets_no_agent_tasks_until_it_is_back(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    async with (
        ScriptedLLM(answer(), models=["m"]) as llm,
        running_controller(kube, namespace),
        running_worker(kube, "flaky-box", namespace, PLUGINS, **settings(llm, tmp_path)),
    ):
        await node_matches(kube, "flaky-box", lambda n: "agent" in n.status.capability.executors)
        llm.down = True
        node = await node_matches(kube, "flaky-box", lambda n: "agent" not in n.status.capability.executors)
        assert condition_of(node, "InferenceReady") == ("False", "EndpointError")
        assert condition_of(node, "Ready") == ("True", "WorkerHeartbeat")  # still Ready for other executors
        assert "stub" in node.status.capability.executors
        await make_task(kube, namespace, "stubby", payload={"prompt": "go"})
        await make_task(kube, namespace, "agenty", executor="agent", modelRef="m", payload={"prompt": "go"})
        assert (await wait_for(kube, namespace, "stubby", finished)).status.verdict == "GO"
        waiting = await wait_for(kube, namespace, "agenty", lambda t: condition(t, "Blocked") is not None)
        assert (waiting.phase, condition(waiting, "Blocked")) == ("Pending", ("True", "NoFittingNode"))
        llm.down = False
        done = await wait_for(kube, namespace, "agenty", finished, timeout=20)
        assert (done.status.assigned_node, done.status.verdict) == ("flaky-box", "GO")


async def test_fastest_prefers_the_measured_fast_node_and_spread_the_emptiest(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    async with (
        ScriptedLLM(answer(chunk_delay=0.02), models=["m"]) as slow,
        ScriptedLLM(answer(chunk_delay=0.0), models=["m"]) as fast,
        running_worker(kube, "a-slow", namespace, PLUGINS, labels={"box": "a"}, **settings(slow, tmp_path)),
        running_worker(kube, "b-fast", namespace, PLUGINS, labels={"box": "b"}, **settings(fast, tmp_path)),
    ):
        async with running_controller(kube, namespace, placement="fastest"):
            for box in ("a", "b"):  # a task on each, so each node measures its speed
                await make_task(
                    kube, namespace, f"warm-{box}", executor="agent", modelRef="m",
                    requiredCapability={"nodeSelector": {"box": box}}, payload={"prompt": "go"},
                )  # fmt: skip
                await wait_for(kube, namespace, f"warm-{box}", finished, timeout=20)
            slow_node = await node_matches(kube, "a-slow", lambda n: n.status.capability.models[0].tokens_per_second)
            fast_node = await node_matches(kube, "b-fast", lambda n: n.status.capability.models[0].tokens_per_second)
            assert fast_node.status.capability.models[0].tokens_per_second > (  # type: ignore[operator]
                slow_node.status.capability.models[0].tokens_per_second  # type: ignore[operator]
            )
            await make_task(kube, namespace, "goes-fast", executor="agent", modelRef="m", payload={"prompt": "go"})
            assert (await wait_for(kube, namespace, "goes-fast", finished)).status.assigned_node == "b-fast"
        async with running_controller(kube, namespace):  # first-fit: by name
            await make_task(kube, namespace, "goes-first", executor="agent", modelRef="m", payload={"prompt": "go"})
            assert (await wait_for(kube, namespace, "goes-first", finished)).status.assigned_node == "a-slow"
        async with running_controller(kube, namespace, placement="spread"):
            await make_task(kube, namespace, "busy", requiredCapability={"nodeSelector": {"box": "a"}},
                            payload={"sleepSeconds": 30})  # fmt: skip
            await wait_for(kube, namespace, "busy", lambda t: t.phase == "Running")
            await make_task(kube, namespace, "spreads", payload={"prompt": "go"})
            assert (await wait_for(kube, namespace, "spreads", finished)).status.assigned_node == "b-fast"


async def test_a_node_on_ollama_advertises_sizes_load_times_and_what_is_loaded_put_right(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The worker against a stand-in Ollama: each model's sizeGB (one bigger than the node's model memory advertised
    as the memory, and said on the node), loadSeconds estimated from it, and a load seen once it holds."""
    sizes = {"qwen2.5-coder:7b": 4_683_087_332, "llama3.3:70b": 42_000_000_000}
    async with (
        Ollama(sizes) as ollama,
        running_worker(
            kube, "ollama-box", namespace, PLUGINS, overrides={"model_memory_gb": 24}, **settings(ollama, tmp_path)
        ),  # fmt: skip
    ):
        node = await node_matches(kube, "ollama-box", lambda n: len(n.status.capability.models) == 2)
        big, coder = node.status.capability.models
        assert (node.status.capability.model_memory_gb, big.size_gb, big.load_seconds) == (24, 24, 26)
        assert (coder.size_gb, coder.load_seconds, coder.loaded) == (4.68, 6.68, False)
        report = next(c for c in node.status.conditions if c.type == "ModelReportsValid")
        assert (report.status, report.reason) == ("False", "ModelLargerThanMemory")
        assert "llama3.3:70b is 42 GB, more than the node's 24 GB of model memory" in report.message
        ollama.loaded = {"qwen2.5-coder:7b"}
        await node_matches(kube, "ollama-box", lambda n: bool(n.status.capability.models[1].loaded))
