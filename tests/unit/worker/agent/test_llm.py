"""The model-server client against the scripted server over real HTTP: what is retried, what is not, usage."""

from __future__ import annotations

from typing import Any

import pytest

from foreman.api.tooling.scripted_llm import Fail, ScriptedLLM, Turn
from foreman.worker.agent.llm import ContextExceeded, Endpoint, ModelRequest, ModelServer, ModelServerError, backoff

MESSAGES = [{"role": "user", "content": "hi"}]


async def ask(server: ModelServer, retries: list[str], turn_timeout: float = 10) -> Any:
    async def note(reason: str, delay: float) -> None:
        retries.append(reason)

    return await server.complete(ModelRequest("m", MESSAGES, [], turn_timeout=turn_timeout), note)


async def no_sleep(seconds: float) -> None:
    pass


async def test_5xx_429_resets_and_silence_are_retried_then_the_answer_counts() -> None:
    script = [
        Fail(500),
        Fail(429, "slow down"),
        Turn("x", cut_after=2),  # connection closed mid-stream
        Turn("late", delay=2),  # silent past the turn timeout
        Turn("hello", prompt_tokens=7, completion_tokens=2),
    ]
    async with ScriptedLLM(script) as llm:
        server = ModelServer(Endpoint(llm.base_url), sleep=no_sleep)
        retries: list[str] = []
        completion = await ask(server, retries, turn_timeout=0.5)
        await server.close()
    assert completion.answer.content == "hello"
    assert (completion.usage.prompt, completion.usage.completion, completion.estimated) == (7, 2, False)
    assert retries[0].startswith("server answered 500")
    assert retries[1].startswith("server answered 429: slow down")
    assert "no answer within the turn timeout" in retries[3]
    assert len(retries) == 4


async def test_a_server_that_rejects_stream_options_is_asked_without_and_usage_is_estimated() -> None:
    async with ScriptedLLM([Turn("one"), Turn("two")], reject_stream_options=True) as llm:
        server = ModelServer(Endpoint(llm.base_url), sleep=no_sleep)
        retries: list[str] = []
        first = await ask(server, retries)
        second = await ask(server, retries)
        await server.close()
    assert len(retries) == 1  # learnt once
    assert "stream_options" in retries[0]
    assert [r.get("stream_options") for r in llm.requests] == [{"include_usage": True}, None, None]
    assert first.estimated
    assert second.estimated
    assert first.usage.completion >= 1


async def test_tool_choice_required_is_sent_where_the_server_takes_it_and_learnt_where_it_does_not() -> None:
    tools = [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}]
    wanting = ModelRequest("m", MESSAGES, tools, require_tool=True)
    for refuses in (False, True):
        async with ScriptedLLM([Turn("a"), Turn("b")], reject_tool_choice=refuses) as llm:
            server = ModelServer(Endpoint(llm.base_url), sleep=no_sleep)
            retries: list[str] = []

            async def note(reason: str, delay: float, retries: list[str] = retries) -> None:
                retries.append(reason)

            await server.complete(wanting, note)
            await server.complete(wanting, note)
            await server.close()
        sent = [r.get("tool_choice") for r in llm.requests]
        assert sent == (["required", None, None] if refuses else ["required", "required"])
        assert len(retries) == (1 if refuses else 0)
    assert "tool_choice" not in ModelRequest("m", MESSAGES, tools).body(include_usage=True)


async def test_a_context_refusal_is_context_exceeded_with_the_servers_context() -> None:
    async with ScriptedLLM([Turn("never")], context_tokens=64) as llm:
        server = ModelServer(Endpoint(llm.base_url), sleep=no_sleep)
        long = ModelRequest("m", [{"role": "user", "content": "word " * 400}], [])
        with pytest.raises(ContextExceeded) as refused:
            await server.complete(long, lambda reason, delay: no_sleep(0))
        await server.close()
    assert refused.value.context == 64
    assert server.include_usage


@pytest.mark.parametrize(("status", "said"), [(404, "model 'm' not found"), (401, "bad key"), (400, "too long")])
async def test_refusals_are_not_retried(status: int, said: str) -> None:
    async with ScriptedLLM([Fail(status, said)]) as llm:
        server = ModelServer(Endpoint(llm.base_url), sleep=no_sleep)
        server.include_usage = False
        with pytest.raises(ModelServerError, match=said):
            await ask(server, [])
        await server.close()


async def test_a_server_that_keeps_failing_is_given_up_after_the_budget() -> None:
    async with ScriptedLLM([], when_exhausted=Fail(503)) as llm:
        server = ModelServer(Endpoint(llm.base_url, retry_budget=0.2))
        with pytest.raises(ModelServerError, match="gave up after"):
            await ask(server, [])
        await server.close()


def test_backoff_grows_is_capped_and_jittered() -> None:
    assert 0.25 <= backoff(1) <= 0.5
    assert 2 <= backoff(4) <= 4
    assert all(15 <= backoff(20) <= 30 for _ in range(20))


async def test_a_task_without_a_model_runs_with_the_first_the_server_lists() -> None:
    async with ScriptedLLM([Turn("hi"), Turn("again")], models=["qwen2.5-coder:7b", "llama3.1:8b"]) as llm:
        server = ModelServer(Endpoint(llm.base_url), sleep=no_sleep)
        await server.complete(ModelRequest(None, MESSAGES, []), lambda reason, delay: no_sleep(delay))
        await server.complete(ModelRequest("llama3.1:8b", MESSAGES, []), lambda reason, delay: no_sleep(delay))
        await server.close()
    assert [request["model"] for request in llm.requests] == ["qwen2.5-coder:7b", "llama3.1:8b"]
