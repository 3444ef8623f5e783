"""The scripted OpenAI-compatible server the executor tests stand in for a model: driven by the real openai client."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from foreman.api.tooling.scripted_llm import Call, Fail, ScriptedLLM, Turn, demo_script

USER: list[Any] = [{"role": "user", "content": "hi"}]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(server: ScriptedLLM) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)


async def raw_stream(
    http: aiohttp.ClientSession, server: ScriptedLLM, **body: Any
) -> tuple[list[dict[str, Any]], bool, bool]:
    """POST a streamed request; return the chunks, whether [DONE] came and whether the body ended cleanly."""
    chunks: list[dict[str, Any]] = []
    done = False
    complete = True
    async with http.post(f"{server.base_url}/chat/completions", json={"stream": True, **body}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        try:
            async for line in response.content:
                text = line.decode().strip()
                if not text:
                    continue
                assert text.startswith("data: ")
                assert not done, "nothing may follow [DONE]"
                if text == "data: [DONE]":
                    done = True
                else:
                    chunks.append(json.loads(text.removeprefix("data: ")))
        except aiohttp.ClientPayloadError:
            complete = False
    return chunks, done, complete


async def collect(ai: AsyncOpenAI, **kwargs: Any) -> dict[str, Any]:
    """Stream one answer with the openai client and reassemble it the way an agent loop must."""
    content, reasoning = "", ""
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    usage = None
    stream = await ai.chat.completions.create(model="m", messages=kwargs.pop("messages", USER), stream=True, **kwargs)
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            for fragment in delta.tool_calls or []:
                call = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += fragment.id or ""
                if fragment.function is not None:
                    call["name"] += fragment.function.name or ""
                    call["arguments"] += fragment.function.arguments or ""
            finish = choice.finish_reason or finish
    return {
        "content": content,
        "reasoning": reasoning,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage,
    }


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 7])
async def test_tool_call_arguments_reassemble_across_chunks(piece: int) -> None:
    tricky = '{"path": "a \\"quoted\\" caf\\u00e9", "text": "naïve — ünïcode ☃ 😀", "nl": "x\\ny\\\\z"}'
    as_dict = {"old": 'say "hi"\n', "new": "café ☃", "n": [1, 2.5, None, True]}
    script = [Turn(calls=[Call("edit", tricky, id="call_a"), Call("edit", as_dict)], piece=piece)]
    async with ScriptedLLM(script) as server, client(server) as ai:
        got = await collect(ai)
    assert got["finish"] == "tool_calls"
    assert got["calls"][0] == {"id": "call_a", "name": "edit", "arguments": tricky}
    assert json.loads(got["calls"][0]["arguments"])["path"] == 'a "quoted" café'
    assert json.loads(got["calls"][1]["arguments"]) == as_dict
    assert got["calls"][1]["arguments"] == json.dumps(as_dict)


async def test_tool_call_fragments_have_the_real_shape(http: aiohttp.ClientSession) -> None:
    turn = Turn(content="Looking.", calls=[Call("read_file", {"path": "calc.py"}), Call("list_files", {})], piece=4)
    async with ScriptedLLM([turn]) as server:
        chunks, done, complete = await raw_stream(http, server, model="m", messages=USER)
    assert done
    assert complete
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    fragments = [f for c in chunks for f in c["choices"][0]["delta"].get("tool_calls", [])]
    firsts = [f for f in fragments if "id" in f]
    assert [f["index"] for f in firsts] == [0, 1]
    for first in firsts:
        assert first["type"] == "function"
        assert set(first["function"]) == {"name", "arguments"}
    for later in (f for f in fragments if "id" not in f):
        assert set(later) == {"index", "function"}
        assert set(later["function"]) == {"arguments"}
    # the first call's fragments all come before the second call's
    assert [f["index"] for f in fragments] == sorted(f["index"] for f in fragments)
    last = chunks[-1]["choices"][0]
    assert last == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert "usage" not in chunks[-1]


async def test_several_calls_in_one_turn_and_default_ids_unique_per_server() -> None:
    turn = Turn(calls=[Call("a", {"x": 1}), Call("b", {"y": 2}), Call("c", "{}")])
    async with ScriptedLLM([turn, turn]) as server, client(server) as ai:
        first = await collect(ai)
        second = await collect(ai)
    assert [c["name"] for c in first["calls"]] == ["a", "b", "c"]
    assert [c["arguments"] for c in first["calls"]] == ['{"x": 1}', '{"y": 2}', "{}"]
    ids = [c["id"] for c in first["calls"] + second["calls"]]
    assert len(set(ids)) == 6
    assert all(i.startswith("call_") for i in ids)


async def test_usage_chunk_only_with_include_usage(http: aiohttp.ClientSession) -> None:
    script = [Turn("hello"), Turn("hello", prompt_tokens=11, completion_tokens=3), Turn("hello", usage=False)]
    async with ScriptedLLM(script) as server:
        plain, done, _ = await raw_stream(http, server, model="m", messages=USER)
        assert done
        assert all("usage" not in c for c in plain)
        opts = {"stream_options": {"include_usage": True}}
        with_usage, done, _ = await raw_stream(http, server, model="m", messages=USER, **opts)
        assert done
        assert with_usage[-1]["choices"] == []
        assert with_usage[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        assert all(c["usage"] is None for c in with_usage[:-1])  # OpenAI sends null until the last chunk
        assert with_usage[-2]["choices"][0]["finish_reason"] == "stop"
        without, done, _ = await raw_stream(http, server, model="m", messages=USER, **opts)
        assert done
        assert without[-1]["choices"][0]["finish_reason"] == "stop"


async def test_usage_defaults_are_deterministic_and_the_openai_client_sees_them() -> None:
    async with ScriptedLLM([Turn("x" * 40), Turn("x" * 40)]) as server, client(server) as ai:
        one = await collect(ai, stream_options={"include_usage": True})
        two = await collect(ai, stream_options={"include_usage": True})
    assert one["usage"] is not None
    assert one["usage"] == two["usage"]
    assert one["usage"].completion_tokens == 10
    assert one["usage"].prompt_tokens == len(json.dumps(USER)) // 4
    assert one["usage"].total_tokens == one["usage"].prompt_tokens + 10


async def test_reasoning_content_comes_before_content(http: aiohttp.ClientSession) -> None:
    turn = Turn(content="The answer is 4.", reasoning="2 + 2: add them up, carefully.", piece=6)
    async with ScriptedLLM([turn, turn]) as server, client(server) as ai:
        chunks, _, _ = await raw_stream(http, server, model="m", messages=USER)
        got = await collect(ai)
    kinds = [k for c in chunks[1:-1] for k in c["choices"][0]["delta"]]
    assert kinds == sorted(kinds, key=["reasoning_content", "content"].index)
    assert "reasoning_content" in kinds
    assert got["reasoning"] == turn.reasoning
    assert got["content"] == turn.content


async def test_only_reasoning_then_length() -> None:
    async with ScriptedLLM([Turn(reasoning="thinking...", finish_reason="length")]) as server, client(server) as ai:
        got = await collect(ai)
    assert got == {"content": "", "reasoning": "thinking...", "calls": [], "finish": "length", "usage": None}


async def test_fail_then_a_good_turn() -> None:
    async with ScriptedLLM([Fail(500, "boom"), Fail(429, "slow down"), Turn("ok")]) as server, client(server) as ai:
        with pytest.raises(openai.InternalServerError) as err:
            await collect(ai)
        assert err.value.status_code == 500
        assert err.value.body == {"message": "boom", "type": "server_error", "code": 500}
        with pytest.raises(openai.RateLimitError):
            await collect(ai)
        assert (await collect(ai))["content"] == "ok"
        with pytest.raises(openai.InternalServerError, match="script exhausted"):
            await collect(ai)
    assert len(server.requests) == 4


async def test_when_exhausted_and_set_script() -> None:
    async with ScriptedLLM([Turn("one")], when_exhausted=Turn("again")) as server, client(server) as ai:
        assert (await collect(ai))["content"] == "one"
        assert (await collect(ai))["content"] == "again"
        assert (await collect(ai))["content"] == "again"
        server.set_script(lambda request: Turn(f"{len(request['messages'])} messages"))
        assert (await collect(ai))["content"] == "1 messages"
        server.set_script([Fail(502, "bad gateway"), Turn("back")])
        with pytest.raises(openai.APIStatusError) as err:
            await collect(ai)
        assert err.value.status_code == 502
        assert (await collect(ai))["content"] == "back"


async def test_cut_after_gives_the_client_an_incomplete_stream(http: aiohttp.ClientSession) -> None:
    turn = Turn("some content here", calls=[Call("edit", {"path": "calc.py", "new": "x" * 40})], cut_after=6)
    async with ScriptedLLM([turn, turn, Turn("fine")]) as server, client(server) as ai:
        chunks, done, complete = await raw_stream(http, server, model="m", messages=USER)
        assert len(chunks) == 6
        assert not done
        assert not complete
        assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
        with pytest.raises(openai.APIConnectionError):
            await collect(ai)
        assert (await collect(ai))["content"] == "fine"  # the server itself is still fine


async def test_cut_after_zero_and_non_streamed() -> None:
    async with ScriptedLLM([Turn("x", cut_after=0), Turn("x", cut_after=0)]) as server, client(server) as ai:
        with pytest.raises(openai.APIConnectionError):
            await collect(ai)
        with pytest.raises(openai.APIConnectionError):
            await ai.chat.completions.create(model="m", messages=USER)


async def test_cut_after_every_chunk_still_withholds_done(http: aiohttp.ClientSession) -> None:
    async with ScriptedLLM([Turn("hi", cut_after=100)]) as server:
        chunks, done, complete = await raw_stream(http, server, model="m", messages=USER)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not done
    assert not complete


async def test_reject_stream_options_is_a_400_that_consumes_nothing() -> None:
    async with ScriptedLLM([Turn("first")], reject_stream_options=True) as server, client(server) as ai:
        with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: stream_options"):
            await collect(ai, stream_options={"include_usage": True})
        got = await collect(ai)
    assert got["content"] == "first"
    assert got["usage"] is None
    assert [("stream_options" in r) for r in server.requests] == [True, False]


async def test_invalid_json_arguments_in_history_is_a_500() -> None:
    history = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "edit", "arguments": '{"path": "calc'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "error"},
    ]
    async with ScriptedLLM([Turn("never sent"), Turn("next")]) as server, client(server) as ai:
        with pytest.raises(openai.InternalServerError, match="arguments as JSON"):
            await collect(ai, messages=history)
        history[1]["tool_calls"][0]["function"]["arguments"] = '{"path": "calc.py"}'
        assert (await collect(ai, messages=history))["content"] == "never sent"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([*USER, {"role": "assistant", "content": ""}], "either content or tool_calls"),
        ([*USER, {"role": "assistant", "content": None, "tool_calls": []}], "either content or tool_calls"),
        ([*USER, {"role": "tool", "tool_call_id": "call_9", "content": "x"}], "call_9"),
        (
            [
                *USER,
                {"role": "assistant", "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "user", "content": "interrupting"},
                {"role": "tool", "tool_call_id": "call_1", "content": "x"},
            ],
            "call_1",
        ),
        ([], "messages"),
        ([{"content": "no role"}], "role"),
    ],
)
async def test_strict_validation_is_a_400(messages: list[dict[str, Any]], match: str) -> None:
    async with ScriptedLLM([Turn("kept")]) as server, client(server) as ai:
        with pytest.raises(openai.BadRequestError, match=match):
            await collect(ai, messages=messages)
        assert (await collect(ai))["content"] == "kept"


async def test_a_valid_tool_round_trip_is_accepted() -> None:
    history = [
        *USER,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"k": 1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
    ]
    async with ScriptedLLM([Turn("done")]) as server, client(server) as ai:
        assert (await collect(ai, messages=history))["content"] == "done"


async def test_missing_model_and_bad_body(http: aiohttp.ClientSession) -> None:
    async with ScriptedLLM([Turn("kept")]) as server:
        url = f"{server.base_url}/chat/completions"
        async with http.post(url, json={"messages": USER}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["type"] == "invalid_request_error"
        async with http.post(url, data=b"{not json") as response:
            assert response.status == 400
        assert len(server.requests) == 2


async def test_context_size_exceeded_is_llama_servers_400() -> None:
    big = [{"role": "user", "content": "x" * 1000}]
    async with ScriptedLLM([Turn("fits")], context_tokens=100) as server, client(server) as ai:
        with pytest.raises(openai.BadRequestError) as err:
            await collect(ai, messages=big)
        assert isinstance(err.value.body, dict)
        assert err.value.body["type"] == "exceed_context_size_error"
        assert err.value.body["n_ctx"] == 100
        assert (await collect(ai))["content"] == "fits"


async def test_non_streamed_completion() -> None:
    turn = Turn("Let me look.", reasoning="hmm", calls=[Call("list_files", {"path": "."}, id="call_z")])
    async with ScriptedLLM([turn, Turn("plain")]) as server, client(server) as ai:
        completion = await ai.chat.completions.create(model="m", messages=USER)
        plain = await ai.chat.completions.create(model="m", messages=USER, stream=False)
    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look."
    assert (choice.message.model_extra or {})["reasoning_content"] == "hmm"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id == "call_z"
    assert call.function.name == "list_files"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"path": "."}  # type: ignore[union-attr]
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert plain.choices[0].message.content == "plain"
    assert plain.choices[0].finish_reason == "stop"


async def test_delay_holds_back_the_headers() -> None:
    async with ScriptedLLM([Turn("slow", delay=5.0), Turn("quick")]) as server, client(server) as ai:
        with pytest.raises(openai.APITimeoutError):
            await collect(ai, timeout=0.2)
        assert (await collect(ai))["content"] == "quick"


async def test_chunk_delay_spaces_the_chunks(http: aiohttp.ClientSession) -> None:
    turn = Turn("abcdefghij", piece=2, chunk_delay=0.03)  # role + 5 content + finish = 7 chunks, 6 gaps
    async with ScriptedLLM([turn]) as server:
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunks, done, _ = await raw_stream(http, server, model="m", messages=USER)
        elapsed = loop.time() - start
    assert len(chunks) == 7
    assert done
    assert elapsed >= 6 * 0.03


async def test_an_empty_turn_is_a_bare_stop() -> None:
    async with ScriptedLLM([Turn()]) as server, client(server) as ai:
        got = await collect(ai)
    assert got == {"content": "", "reasoning": "", "calls": [], "finish": "stop", "usage": None}


async def test_stop_does_not_wait_for_a_reply_in_flight() -> None:
    asked = asyncio.Event()

    def script(request: dict[str, Any]) -> Turn:
        asked.set()
        return Turn("never", delay=60.0)

    server = ScriptedLLM(script)
    await server.start()
    async with client(server) as ai:
        pending = asyncio.create_task(collect(ai))
        await asyncio.wait_for(asked.wait(), 5)
        await asyncio.wait_for(server.stop(), 5)
        with pytest.raises(openai.APIConnectionError):
            await asyncio.wait_for(pending, 5)


async def test_models_health_props(http: aiohttp.ClientSession) -> None:
    async with ScriptedLLM([], model="qwen", models=["qwen", "other"], context_tokens=8192) as server:
        async with client(server) as ai:
            models = [m async for m in ai.models.list()]
        assert [m.id for m in models] == ["qwen", "other"]
        assert (models[0].model_extra or {})["max_model_len"] == 8192
        root = server.base_url.removesuffix("/v1")
        async with http.get(f"{root}/health") as response:
            assert await response.json() == {"status": "ok"}
        async with http.get(f"{root}/props") as response:
            props = await response.json()
        assert props == {"default_generation_settings": {"n_ctx": 8192}, "model_alias": "qwen"}
        async with http.get(f"{server.base_url}/models") as response:
            listing = await response.json()
        assert listing["object"] == "list"
        assert listing["data"][1] == {
            "id": "other",
            "object": "model",
            "created": 0,
            "owned_by": "scripted",
            "max_model_len": 8192,
        }


async def test_down_answers_503_everywhere(http: aiohttp.ClientSession) -> None:
    async with ScriptedLLM([Turn("after")]) as server, client(server) as ai:
        server.down = True
        root = server.base_url.removesuffix("/v1")
        for path in ("/health", "/props", "/v1/models"):
            async with http.get(root + path) as response:
                assert response.status == 503
        with pytest.raises(openai.InternalServerError) as err:
            await collect(ai)
        assert err.value.status_code == 503
        assert len(server.requests) == 1
        server.down = False
        assert (await collect(ai))["content"] == "after"


async def test_demo_script_sequence_through_a_tool_loop() -> None:
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("list_files", "read_file", "edit_file", "run", "submit_result")
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Make the tests pass."}]
    seen: list[tuple[str, dict[str, Any]]] = []
    async with ScriptedLLM(demo_script) as server, client(server) as ai:
        for _ in range(6):
            got = await collect(ai, messages=messages, tools=tools, stream_options={"include_usage": True})
            assert got["finish"] == "tool_calls"
            assert got["content"]
            (call,) = got["calls"]
            seen.append((call["name"], json.loads(call["arguments"])))
            if call["name"] == "submit_result":
                break
            messages.append(
                {
                    "role": "assistant",
                    "content": got["content"],
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": call["arguments"]},
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": "ok"})
    assert seen == [
        ("list_files", {"path": "."}),
        ("read_file", {"path": "calc.py"}),
        ("edit_file", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
        ("run", {"argv": ["python3", "-m", "unittest", "-q"]}),
        ("submit_result", {"verdict": "GO", "summary": "Fixed add() in calc.py: it subtracted; the tests pass now."}),
    ]
    late = demo_script({"messages": [{"role": "tool"}] * 7})
    assert isinstance(late, Turn)
    assert late.calls[0].name == "submit_result"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_module_entry_point_serves_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "foreman.api.tooling.scripted_llm",
        "--port",
        "0",
        "--script",
        "demo",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert line.startswith("http://127.0.0.1:")
        assert line.endswith("/v1")
        async with AsyncOpenAI(base_url=line, api_key="x", max_retries=0) as ai:
            got = await collect(ai)
        assert got["calls"][0]["name"] == "list_files"
        process.send_signal(stop_signal)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
