"""Assembling one streamed chat-completions answer from its chunks (pure).

Servers send the answer in pieces: `delta.content`, `delta.reasoning_content` (llama.cpp's and vLLM's reasoning
parsers), and `delta.tool_calls` fragments keyed by `index`, whose first fragment has the call's `id` and
`function.name` and whose later ones carry pieces of `function.arguments`, a JSON text split anywhere. A chunk with
`choices: []` may carry `usage`. Chunks are plain dicts (the wire JSON), so this is tested without a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """The JSON text as the model wrote it; `parsed()` says whether it is a JSON object."""

    def parsed(self) -> dict[str, Any] | None:
        """The arguments as an object, or None when they are not valid JSON (a truncated stream) or not an object."""
        try:
            value = json.loads(self.arguments or "{}")
        except (ValueError, RecursionError):  # NB: nested past the decoder's depth is no call either
            return None
        return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class TokenCount:
    prompt: int
    completion: int
    cached: int | None = None
    """Prompt tokens the server reused from its cache, where it says (OpenAI's `prompt_tokens_details.cached_tokens`,
    llama-server's `timings.cache_n`): the rest it processed again."""


@dataclass(frozen=True)
class Answer:
    content: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    """None when the stream ended without one: cut off mid-way."""
    usage: TokenCount | None
    speed: float | None = None
    """Generation speed the server measured (llama-server's `timings.predicted_per_second`)."""


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class Assembler:
    """Feed it chunks in order (`add`), then take the `answer()`."""

    _content: list[str] = field(default_factory=list)
    _reasoning: list[str] = field(default_factory=list)
    _calls: dict[int, _PartialCall] = field(default_factory=dict)
    _finish_reason: str | None = None
    _usage: TokenCount | None = None
    _timings: dict[str, Any] = field(default_factory=dict)

    def add(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict) and "completion_tokens" in usage:
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            self._usage = TokenCount(
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                int(cached) if isinstance(cached, int) else None,
            )
        if isinstance(chunk.get("timings"), dict):
            self._timings = chunk["timings"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._content.append(delta["content"])
            if delta.get("reasoning_content"):
                self._reasoning.append(delta["reasoning_content"])
            for fragment in delta.get("tool_calls") or []:
                self._add_fragment(fragment)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]

    def _add_fragment(self, fragment: dict[str, Any]) -> None:
        # NB: some servers omit `index` when they send each call whole; then each fragment is a call of its own
        index = fragment.get("index")
        if index is None:
            index = len(self._calls)
        call = self._calls.setdefault(int(index), _PartialCall())
        call.id = call.id or fragment.get("id") or ""
        function = fragment.get("function") or {}
        call.name = call.name or function.get("name") or ""
        if function.get("arguments"):
            call.arguments.append(function["arguments"])

    def answer(self) -> Answer:
        calls = tuple(
            ToolCall(id=call.id, name=call.name, arguments="".join(call.arguments))
            for _, call in sorted(self._calls.items())
        )
        usage = self._usage
        cache_n = self._timings.get("cache_n")
        if usage is not None and usage.cached is None and isinstance(cache_n, int):
            usage = TokenCount(usage.prompt, usage.completion, cache_n)
        speed = self._timings.get("predicted_per_second")
        return Answer(
            content="".join(self._content),
            reasoning="".join(self._reasoning),
            tool_calls=calls,
            finish_reason=self._finish_reason,
            usage=usage,
            speed=float(speed) if isinstance(speed, int | float) and speed > 0 else None,
        )


def assemble(chunks: list[dict[str, Any]]) -> Answer:
    assembler = Assembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.answer()
