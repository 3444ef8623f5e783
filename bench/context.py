"""Context fitting against real prompt processing: how many prompt tokens the real llama-server processes per token
the conversation grows by, with the fitting policy before (each turn past the budget shortens one more early tool
result just enough) and now (one big step down to half the budget, then only appends), in one run.

A puppet proxy stands between the agent and the server: it forwards each chat request to the real llama-server
(SmolLM2-135M, 2 slots) with max_tokens 1, so the server really processes the prompt and says how much
(`timings.prompt_n`, and `cache_n` reused from its KV cache), then answers the agent with a scripted read_file of a
file of a few hundred tokens. A 20-turn task grows to several times its context budget.

Arithmetic to plan with: compacting to a fraction c of the budget and then only appending re-reads 1 / (1 - c) in
steady state (c = 0.5: 2.0); the policy before re-reads about budget / growth-per-turn once over budget.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from foreman.api.models.agents import AgentSpec
from foreman.api.models.nodes import ModelOffer
from foreman.api.models.tasks import AgenticTask
from foreman.worker.agent import conversation
from foreman.worker.agent.conversation import SHORTENED_KEEP, Message, estimate_tokens
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.executors.base import ExecutionContext, ModelContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # NB: the real server's fixture lives with the tests
from tests.servers import llama

TURNS = 20
FILE_CHARS = 900
"""Each file read is about 230 tokens."""
WINDOW = 1536
"""The Agent's contextWindowTokens; with maxOutputTokens 512 the budget is 1,024 tokens: the task grows to ~5x it."""


@dataclass
class Conversation:
    """What the puppet saw of one agent's conversation: the server's counts per request, and the history whole."""

    processed: list[int] = field(default_factory=list)
    cached: list[int] = field(default_factory=list)
    head: list[Message] = field(default_factory=list)
    appended: list[Message] = field(default_factory=list)


class Puppet:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.conversations: dict[str, Conversation] = {}
        self.session: aiohttp.ClientSession | None = None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body["messages"]
        task = messages[1]["content"].split("\n", 1)[0]  # the task prompt names the conversation
        seen = self.conversations.setdefault(task, Conversation(head=messages[:2]))
        if len(messages) > 2:
            seen.appended += messages[-2:]  # the latest call and its result, always sent whole
        forwarded = {**body, "stream": False, "max_tokens": 1, "temperature": 0}
        forwarded.pop("stream_options", None)
        assert self.session is not None
        async with self.session.post(f"{self.upstream}/chat/completions", json=forwarded) as answer:
            said = await answer.json()
        timings = said.get("timings") or {}
        seen.processed.append(int(timings.get("prompt_n", 0)))
        seen.cached.append(int(timings.get("cache_n", 0)))
        done = sum(1 for message in messages if message["role"] == "tool")
        call = (
            {"name": "submit_result", "arguments": json.dumps({"verdict": "GO", "summary": "read them all"})}
            if done >= TURNS
            else {"name": "read_file", "arguments": json.dumps({"path": f"notes/{done}.txt"})}
        )
        return await self._stream(request, call, said.get("usage") or {})

    async def _stream(self, request: web.Request, call: dict[str, str], usage: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        delta = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"index": 0, "id": f"c{time.monotonic_ns()}", "type": "function", "function": call}],
        }
        chunks = [
            {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {"choices": [], "usage": {**usage, "completion_tokens": 1}},
        ]  # fmt: skip
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    async def prompt_tokens(self, messages: Sequence[Message], tools: Any) -> int:
        """The server's own count of a whole history (its refusal says it when it is past the context)."""
        assert self.session is not None
        body = {"model": llama.ALIAS, "messages": list(messages), "tools": tools, "max_tokens": 1}
        async with self.session.post(f"{self.upstream}/chat/completions", json=body) as answer:
            said = await answer.json()
        if "error" in said:
            return int(said["error"]["n_prompt_tokens"])
        return int(said["usage"]["prompt_tokens"])


@asynccontextmanager
async def puppet(upstream: str) -> AsyncIterator[tuple[Puppet, str]]:
    proxy = Puppet(upstream)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", proxy.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        proxy.session = session
        try:
            yield proxy, f"http://127.0.0.1:{port}/v1"
        finally:
            await runner.cleanup()


def repository(path: Path) -> str:
    (path / "notes").mkdir(parents=True)
    for index in range(TURNS):
        words = " ".join(f"note{index}-{word}" for word in range(FILE_CHARS // 12))
        (path / "notes" / f"{index}.txt").write_text(words[:FILE_CHARS] + "\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["-c", "user.name=b", "-c", "user.email=b@b", "commit",
                                                              "-qm", "notes"]):  # fmt: skip
        subprocess.run(["git", "-C", str(path), *args], check=True)
    return str(path)


class EachTurn:
    """The fitting policy before (the baseline): per request, shorten the oldest tool results just enough."""

    def __init__(self, budget: int | None, keep_recent: int = 6) -> None:
        self.budget = budget
        self.keep_recent = keep_recent

    def fitted(self, messages: Sequence[Message]) -> EachTurn:
        return self

    def within(self, budget: int) -> EachTurn:
        return EachTurn(budget, self.keep_recent)

    def view(self, messages: Sequence[Message]) -> list[Message]:
        fitted = list(messages)
        if self.budget is None or estimate_tokens(fitted) <= self.budget:
            return fitted
        for index in range(len(fitted) - self.keep_recent):
            content = fitted[index].get("content") or ""
            if fitted[index].get("role") != "tool" or len(content) <= SHORTENED_KEEP:
                continue
            dropped = len(content) - SHORTENED_KEEP
            fitted[index] = {**fitted[index], "content": f"{content[:SHORTENED_KEEP]}\n[shortened to fit the context "
                             f"window: {dropped} characters dropped]"}  # fmt: skip
            if estimate_tokens(fitted) <= self.budget:
                break
        return fitted


async def agents(proxy_url: str, proxy: Puppet, count: int, policy: str, root: Path) -> dict[str, float]:
    """`count` agent tasks at once through the puppet; the server's prompt tokens processed per token grown."""
    repo = repository(root / f"repo-{policy}-{count}")
    settings = {"endpoint": proxy_url, "workspaceRoot": str(root / "ws"), "allowRepos": [repo]}
    agent = AgentSpec(model=llama.ALIAS, tools=["read_file", "submit_result"], max_turns=TURNS + 5,
                      context_window_tokens=WINDOW, max_output_tokens=512)  # fmt: skip
    offer = ModelOffer(name=llama.ALIAS, context_tokens=llama.CONTEXT_PER_SLOT)
    names = [f"{policy}-{count}-{index}" for index in range(count)]

    async def one(name: str) -> None:
        task = AgenticTask.new(name, prompt=f"{name}\nRead the notes.", executor="agent", namespace="bench", repo=repo)
        envelope = await AgentExecutor().execute(
            task, ExecutionContext("bench", 1, settings, agent, model=ModelContext(offer))
        )
        assert envelope.verdict == "GO", envelope

    started = time.monotonic()
    original = conversation.Fitting
    if policy == "before":
        conversation.Fitting = EachTurn  # type: ignore[misc, assignment]  # NB: the baseline, for this run only
    try:
        await asyncio.gather(*(one(name) for name in names))
    finally:
        conversation.Fitting = original  # type: ignore[misc]
    elapsed = time.monotonic() - started
    processed = grown = 0
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("x",)]
    for name in names:
        seen = proxy.conversations[name]
        processed += sum(seen.processed[1:])
        whole = await proxy.prompt_tokens([*seen.head, *seen.appended], tools)
        first = await proxy.prompt_tokens(seen.head, tools)
        grown += whole - first
    turns = sum(len(proxy.conversations[name].processed) for name in names)
    return {"processed_per_grown": round(processed / grown, 2), "seconds_per_turn": round(elapsed / turns, 3),
            "processed": processed, "grown": grown}  # fmt: skip


async def measure() -> dict[str, dict[str, float]]:
    if reason := llama.missing():
        raise SystemExit(f"the context bench needs the real server: {reason}")
    root = Path(tempfile.mkdtemp(prefix="foreman-bench-context-"))
    figures: dict[str, dict[str, float]] = {}
    with llama.running(root / "llama.log") as server:
        async with puppet(server.url) as (proxy, url):
            for policy, count in (("now", 1), ("before", 1), ("now", 4)):
                figures[f"{policy}, {count} agent{'s' if count > 1 else ''}"] = await agents(
                    url, proxy, count, policy, root
                )
    return figures


def run() -> dict[str, dict[str, float]]:
    return asyncio.run(measure())
