"""Context fitting through the agent executor's real loop, against the scripted server's faithful
`exceed_context_size_error`: a budget from the node's discovered context, a refit to the context the server reports,
and a clear ContextExceeded when even that cannot fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foreman.api.models.agents import AgentSpec
from foreman.api.models.nodes import ModelOffer
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.scripted_llm import Call, Reply, ScriptedLLM, Turn
from foreman.worker.agent.conversation import estimate_tokens
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.executors.base import ExecutionContext, ModelContext


def reader(turns: int, size: int) -> Any:
    """Writes a file of `size` characters, reads it again and again (a growing history), then submits."""

    def reply(request: dict[str, Any]) -> Reply:
        done = sum(1 for m in request["messages"] if m["role"] == "tool")
        if done == 0:
            return Turn(calls=[Call("write_file", {"path": "big.txt", "content": ("z" * 99 + "\n") * (size // 100)})])
        if done > turns:
            return Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": "read it all"})])
        return Turn(calls=[Call("read_file", {"path": "big.txt", "start_line": 1 + done % 3})])

    return reply


async def run(tmp_path: Path, llm: ScriptedLLM, prompt: str, model: ModelOffer | None = None) -> Any:
    settings = {"endpoint": llm.base_url, "workspaceRoot": str(tmp_path / "ws"), "keepWorkspace": "never"}
    task = AgenticTask.new("ctx", prompt=prompt, executor="agent", namespace="default")
    context = ExecutionContext(
        "node", 1, settings, AgentSpec(tools=["read_file", "write_file", "submit_result"]), model=ModelContext(model)
    )
    return await AgentExecutor().execute(task, context)


async def test_a_budget_from_the_discovered_context_keeps_every_request_inside_it(tmp_path: Path) -> None:
    async with ScriptedLLM(reader(12, 8000), context_tokens=8192) as llm:
        envelope = await run(
            tmp_path, llm, "Read big.txt.", model=ModelOffer(name="scripted-model", context_tokens=8192)
        )
    assert envelope.verdict == "GO", envelope
    assert all(estimate_tokens(r["messages"]) <= 8192 for r in llm.requests)


async def test_a_context_smaller_than_known_is_learnt_from_the_servers_refusal(tmp_path: Path) -> None:
    async with ScriptedLLM(reader(12, 2000), context_tokens=4096) as llm:
        envelope = await run(tmp_path, llm, "Read big.txt.", model=ModelOffer(name="scripted-model"))
    assert envelope.verdict == "GO", envelope
    sizes = [estimate_tokens(r["messages"]) for r in llm.requests]
    assert max(sizes) > 4096  # refused once: nothing said how small the context is
    assert sum(size > 4096 for size in sizes) == 1
    assert all(size <= 4096 for size in sizes[sizes.index(max(sizes)) + 1 :])


async def test_a_task_that_cannot_fit_ends_context_exceeded(tmp_path: Path) -> None:
    async with ScriptedLLM(reader(1, 100), context_tokens=1024) as llm:
        envelope = await run(tmp_path, llm, "x" * 20_000)
    assert (envelope.verdict, envelope.failure_reason) == ("INCOMPLETE", "ContextExceeded")
    assert "does not fit the model's context" in envelope.summary
