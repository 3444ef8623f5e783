"""The offering's probes against a real HTTP stand-in for Ollama: a load the node's own task waits for is measured
and advertised, sizes are clamped to the node's memory and said (worker/offering.py over worker/loadwatch.py)."""

from __future__ import annotations

import asyncio

from foreman.worker.config import WorkerConfig
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.offering import NodeOffer
from tests.conditions import until
from tests.servers.ollama import Ollama

GB = 10**9


def node(ollama: Ollama, clock: list[float]) -> NodeOffer:
    config = WorkerConfig(node_name="n", heartbeat_interval=3600, executors={"agent": {"endpoint": ollama.base_url}})
    offer = NodeOffer({"agent": AgentExecutor()}, config, clock=lambda: clock[0])
    offer.memory_gb = 24
    return offer


async def test_a_load_is_measured_and_advertised_with_clamped_sizes() -> None:
    clock = [0.0]
    async with Ollama({"qwen2.5-coder:7b": 4_683_087_332, "llama3.3:70b": 42 * GB}) as ollama:
        offer = node(ollama, clock)
        await offer.check()
        big, coder = offer.current().models
        assert (big.name, big.loaded, big.size_gb, big.load_seconds) == ("llama3.3:70b", False, 24, 26)
        assert (coder.name, coder.loaded, coder.load_seconds) == ("qwen2.5-coder:7b", False, 6.68)  # from its size
        reports = offer.current().model_reports
        assert reports is not None
        assert reports[:2] == (False, "ModelLargerThanMemory")

        clock[0] = 10.0
        assert offer.model_context("agent", "qwen2.5-coder:7b") is not None  # a task begins with it, not loaded
        await offer.check()  # still not loaded: the load is under way
        ollama.loaded = {"qwen2.5-coder:7b"}
        for clock[0] in (20.0, 21.0):
            await offer.check()
        model = next(m for m in offer.current().models if m.name == "qwen2.5-coder:7b")
        assert (model.loaded, model.load_seconds) == (True, 5.0)  # (10 + 20) / 2 - 10
        assert ollama.asked["/api/ps"] >= 4  # what is loaded is asked at every probe, the rest now and then
        assert ollama.asked["/api/show"] == 2


async def test_a_task_that_waits_for_a_load_wakes_the_probe_at_once() -> None:
    clock = [0.0]
    async with Ollama({"qwen2.5-coder:7b": 4 * GB}) as ollama:
        offer = node(ollama, clock)
        await offer.check()
        stop = asyncio.Event()
        probing = asyncio.create_task(offer.probe(stop))
        asked = ollama.asked["/api/ps"]
        offer.model_context("agent", "qwen2.5-coder:7b")
        await until(lambda: ollama.asked["/api/ps"] > asked)  # the heartbeat interval is an hour
        stop.set()
        await asyncio.wait_for(probing, 2)
