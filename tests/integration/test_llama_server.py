"""Conformance against a real llama-server (SmolLM2-135M, two slots of 8,192 tokens), through the worker's real code
paths: discovery, streamed usage equal to the server's own counts, its exceed_context_size_error, a cancel that frees
the slot, two agents at once, and a task the small model cannot do ending with a verdict and a transcript.

Short by design: max_tokens small, temperature 0, fixed seed. Skipped, with the reason, where the server is not built
(`make llama-server`; `make test` builds it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foreman.api.models.agents import AgentSpec
from foreman.api.models.envelope import VERDICTS
from foreman.api.models.nodes import ModelOffer
from foreman.api.models.tasks import AgenticTask
from foreman.worker import inference
from foreman.worker.agent.llm import ContextExceeded, Endpoint, ModelRequest, ModelServer
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.executors.base import ExecutionContext, ModelContext
from tests.servers import llama

pytestmark = [
    pytest.mark.llama,
    pytest.mark.skipif(llama.missing() is not None, reason=llama.missing() or ""),
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[llama.LlamaServer]:
    with llama.running(tmp_path_factory.mktemp("llama") / "server.log") as running:
        yield running


async def no_retry(reason: str, delay: float) -> None:
    raise AssertionError(f"the real server made the client retry: {reason}")


def request(content: str, **fields: Any) -> ModelRequest:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": content}]
    return ModelRequest(model=llama.ALIAS, messages=messages, tools=[], max_tokens=8, temperature=0, **fields)


async def test_discovery_finds_the_model_and_its_context_per_slot(server: llama.LlamaServer) -> None:
    probe = inference.InferenceProbe(server.url, None)
    state = await probe.check()
    assert state.ready, state.message
    offers = inference.offers(probe.details, aliases={}, speeds={}, manual=[])
    assert [(offer.name, offer.context_tokens) for offer in offers] == [(llama.ALIAS, llama.CONTEXT_PER_SLOT)]


async def test_streamed_usage_equals_the_servers_own_counts(server: llama.LlamaServer) -> None:
    model = ModelServer(Endpoint(server.url))
    streamed = await model.complete(request("Say hello."), no_retry)
    body = {**request("Say hello.").body(include_usage=False), "stream": False, "seed": 1}
    async with aiohttp.ClientSession() as session, session.post(f"{server.url}/chat/completions", json=body) as answer:
        whole = await answer.json()
    assert not streamed.estimated
    assert streamed.usage.prompt == whole["usage"]["prompt_tokens"]
    assert streamed.usage.completion <= 8
    assert streamed.usage.cached is not None  # llama-server says what it reused from its cache
    await model.close()


async def test_a_prompt_past_the_context_is_recognised_with_the_context_the_server_reports(
    server: llama.LlamaServer,
) -> None:
    model = ModelServer(Endpoint(server.url))
    with pytest.raises(ContextExceeded) as refused:
        await model.complete(request("word " * 20_000), no_retry)
    assert refused.value.context == llama.CONTEXT_PER_SLOT
    assert (refused.value.prompt_tokens or 0) > llama.CONTEXT_PER_SLOT
    assert model.include_usage  # a context refusal is not mistaken for a server that rejects stream_options
    await model.close()


async def test_a_cancel_mid_stream_frees_the_slot(server: llama.LlamaServer) -> None:
    model = ModelServer(Endpoint(server.url))
    long = ModelRequest(model=llama.ALIAS, messages=[{"role": "user", "content": "Count from 1 to 10000."}], tools=[],
                        max_tokens=4000, temperature=0)  # fmt: skip
    call = asyncio.create_task(model.complete(long, no_retry))
    async with aiohttp.ClientSession() as session:
        await _until(session, server, lambda slots: any(slot.get("is_processing") for slot in slots))
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await _until(session, server, lambda slots: not any(slot.get("is_processing") for slot in slots))
    await model.close()


async def _until(session: aiohttp.ClientSession, server: llama.LlamaServer, holds: Any) -> None:
    async with asyncio.timeout(60):
        while True:
            async with session.get(f"{server.root}/slots") as answer:
                if holds(await answer.json()):
                    return
            await asyncio.sleep(0.05)


def agent_task(name: str) -> AgenticTask:
    return AgenticTask.new(name, prompt="Write hello.txt containing the word hello, then submit GO.",
                           executor="agent", namespace="default")  # fmt: skip


async def test_two_agents_at_once_on_two_slots_end_with_a_verdict_and_a_transcript(
    server: llama.LlamaServer, tmp_path: Path
) -> None:
    """The small model cannot really do the task: whatever it does, each run ends (a verdict, a reason) and its
    transcript says what happened; nothing hangs."""
    executor = AgentExecutor()
    published: dict[str, str] = {}

    async def run(name: str) -> Any:
        async def publish(text: str) -> None:
            published[name] = text

        settings = {"endpoint": server.url, "workspaceRoot": str(tmp_path / "ws")}
        agent = AgentSpec(model=llama.ALIAS, tools=["list_files", "write_file", "submit_result"], max_turns=3,
                          max_output_tokens=96, temperature=0)  # fmt: skip
        offer = ModelOffer(name=llama.ALIAS, context_tokens=llama.CONTEXT_PER_SLOT)
        context = ExecutionContext("node", 1, settings, agent, publish_transcript=publish, model=ModelContext(offer))
        return await executor.execute(agent_task(name), context)

    first, second = await asyncio.gather(run("one"), run("two"))
    for envelope, name in ((first, "one"), (second, "two")):
        assert envelope.verdict in VERDICTS
        assert envelope.extra["usage"]["turns"] >= 1
        events = [json.loads(line)["event"] for line in published[name].splitlines()]
        assert events[0] == "task"
        assert events[-1] == "end"
