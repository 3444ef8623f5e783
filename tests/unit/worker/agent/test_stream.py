"""Assembling streamed answers: tool-call arguments split anywhere come back whole, in order."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foreman.worker.agent.stream import ToolCall, assemble

arguments = st.dictionaries(
    st.text(min_size=1, max_size=8), st.one_of(st.text(max_size=30), st.integers(), st.booleans()), max_size=4
)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if text[a:b]]


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@given(calls=st.lists(arguments, min_size=1, max_size=3), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_tool_call_fragments_reassemble_by_index(calls: list[dict[str, Any]], cuts: list[int]) -> None:
    chunks = [chunk({"role": "assistant", "content": ""})]
    texts = [json.dumps(c, ensure_ascii=False) for c in calls]
    for index, text in enumerate(texts):
        pieces = split(text, cuts) or [""]
        first = {"index": index, "id": f"call_{index}", "type": "function", "function": {"name": "f", "arguments": ""}}
        chunks.append(chunk({"tool_calls": [first]}))
        chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces]
    chunks.append(chunk({}, "tool_calls"))
    answer = assemble(chunks)
    assert [call.arguments for call in answer.tool_calls] == texts
    assert [call.parsed() for call in answer.tool_calls] == calls
    assert answer.finish_reason == "tool_calls"


def test_interleaved_calls_content_reasoning_and_the_usage_chunk() -> None:
    answer = assemble(
        [
            chunk({"reasoning_content": "think "}),
            chunk({"reasoning_content": "more"}),
            chunk({"content": "Look"}),
            chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "grep", "arguments": '{"pat'}}]}),
            chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "list_files", "arguments": "{}"}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": 'tern": "x"}'}}]}),
            chunk({"content": "ing."}, "tool_calls"),
            {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}},
        ]
    )
    assert (answer.content, answer.reasoning) == ("Looking.", "think more")
    assert [c.name for c in answer.tool_calls] == ["list_files", "grep"]
    assert answer.tool_calls[1].parsed() == {"pattern": "x"}
    assert answer.usage is not None
    assert (answer.usage.prompt, answer.usage.completion) == (12, 3)


def test_a_stream_cut_mid_way_has_no_finish_reason_and_broken_arguments_do_not_parse() -> None:
    answer = assemble([chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"p'}}]})])
    assert answer.finish_reason is None
    assert answer.tool_calls[0].parsed() is None
    assert ToolCall("x", "f", "[1, 2]").parsed() is None  # valid JSON, but not an object
    assert ToolCall("x", "f", "").parsed() == {}  # no arguments at all: an empty object


def test_calls_without_index_are_each_a_call_of_their_own() -> None:
    answer = assemble(
        [
            chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
            chunk({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}, "tool_calls"),
        ]
    )
    assert [c.id for c in answer.tool_calls] == ["a", "b"]
