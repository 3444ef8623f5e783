"""The node's inference server, through the official `openai` client: one streamed model call per `complete`,
with the retries local servers need.

What is retried here (transport): HTTP 5xx and 429, a connection that fails or resets, silence past the turn
timeout (before the first byte or between chunks; a reasoning model may think for minutes, so the whole answer has
no limit). A server that rejects `stream_options.include_usage` is asked again without it, and not asked with it
again. Retries back off (capped, jittered) until `retry_budget` seconds of failure; then ModelServerError. What is
retried by the loop instead (content): an answer cut mid-way or with broken tool-call JSON (`conversation.judge`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import openai

from foreman.api.runtime.backoff import backoff_delay
from foreman.worker.agent.conversation import CHARS_PER_TOKEN, Message, estimate_tokens
from foreman.worker.agent.stream import Answer, Assembler, TokenCount

OnRetry = Callable[[str, float], Awaitable[None]]
"""Told each retry's reason and delay (the transcript records it)."""


class ModelServerError(Exception):
    """The server refused the request (4xx other than 429) or kept failing past the retry budget."""


class ContextExceeded(ModelServerError):
    """The prompt does not fit the model's context (llama-server's `exceed_context_size_error`); `context` is the
    size the server says it has, where it says."""

    def __init__(self, message: str, *, prompt_tokens: int | None, context: int | None):
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context = context


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str | None = None
    request_timeout: float = 30.0
    """Seconds to connect and to send a request."""
    retry_budget: float = 300.0
    """Seconds of failing in one call before it gives up."""


@dataclass(frozen=True)
class ModelRequest:
    """One chat-completions call: what is asked, with which tools, and how long the server may stay silent."""

    model: str | None
    messages: Sequence[Message]
    tools: Sequence[dict[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    turn_timeout: float = 300.0
    require_tool: bool = False
    """Ask for `tool_choice: "required"` (after a text-only answer), where the server takes it."""

    def body(self, *, include_usage: bool, tool_choice: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model or "default",
            "messages": list(self.messages),
            "tools": list(self.tools),
            "stream": True,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        if self.require_tool and tool_choice and self.tools:
            body["tool_choice"] = "required"
        return body


@dataclass(frozen=True)
class Completion:
    answer: Answer
    usage: TokenCount
    estimated: bool
    """The server reported no usage, so `usage` is estimated from the text."""
    generation_seconds: float
    """From the first streamed piece to the end: what tokens per second is measured over."""


def backoff(failures: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Capped exponential, with full jitter over its upper half so retrying workers do not beat in step."""
    return backoff_delay(max(0, failures - 1), base, cap) * (0.5 + random.random() / 2)


class ModelServer:
    def __init__(self, endpoint: Endpoint, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.endpoint = endpoint
        self._sleep = sleep
        self._client = openai.AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key or "not-needed",  # NB: local servers ignore it; the client wants one
            max_retries=0,  # retried here, where the policy (and the transcript of it) is ours
        )
        self.include_usage = True
        """Ask for the usage chunk until the server says it does not know the option."""
        self.tool_choice = True
        """Send `tool_choice: "required"` when a request wants it, until the server refuses it (detected, not
        assumed: llama-server takes it, a vLLM without a tool parser does not)."""
        self._default_model: str | None = None

    async def default_model(self) -> str | None:
        """What a task that names no model runs with: the first model the server lists (llama-server and vLLM list
        the one they serve; Ollama needs a name, and gets one). None when it lists nothing."""
        if self._default_model is None:
            try:
                listing = await self._client.models.list()
            except openai.OpenAIError:
                return None
            self._default_model = next((model.id for model in listing.data), None)
        return self._default_model

    async def close(self) -> None:
        await self._client.close()

    async def complete(self, request: ModelRequest, on_retry: OnRetry) -> Completion:
        if request.model is None:
            request = replace(request, model=await self.default_model())
        failing_since: float | None = None
        failures = 0
        while True:
            try:
                return await self._stream_once(request)
            except openai.BadRequestError as error:
                if exceeded := context_exceeded(error.body):
                    raise exceeded from None
                if request.require_tool and self.tool_choice and "tool_choice" in _said(error):
                    self.tool_choice = False
                    await on_retry(f"server refused tool_choice ({_said(error)}); asking without it", 0.0)
                    continue
                if not self.include_usage:
                    raise ModelServerError(f"the model server refused the request: {_said(error)}") from None
                self.include_usage = False  # NB: some servers and versions reject stream_options; ask without it
                await on_retry(f"server refused stream_options ({_said(error)}); asking without it", 0.0)
                continue
            except openai.APIStatusError as error:
                if error.status_code < 500 and error.status_code not in (408, 429):
                    raise ModelServerError(f"the model server answered {error.status_code}: {_said(error)}") from None
                reason = f"server answered {error.status_code}: {_said(error)}"
            except openai.APITimeoutError:
                reason = f"no answer within the turn timeout ({request.turn_timeout:g} s)"
            except openai.APIConnectionError as error:
                reason = f"connection failed: {error.__cause__ or error}"
            except openai.APIError as error:  # an error event inside the stream
                reason = f"the stream reported an error: {_said(error)}"
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > self.endpoint.retry_budget:
                raise ModelServerError(f"gave up after {failures + 1} failed calls: {reason}")
            failures += 1
            delay = backoff(failures)
            await on_retry(reason, delay)
            await self._sleep(delay)

    async def _stream_once(self, request: ModelRequest) -> Completion:
        timeout = openai.Timeout(
            connect=self.endpoint.request_timeout,
            write=self.endpoint.request_timeout,
            read=request.turn_timeout,
            pool=None,
        )
        # NB: posted as plain JSON, not through chat.completions.create, whose per-call transform of the typed
        # parameters walks the whole history: 16 ms of CPU per turn at 30 turns, 4 ms without it (docs/design.md);
        # chunks arrive as plain dicts for the same reason
        stream = await self._client.post(
            "/chat/completions",
            body=request.body(include_usage=self.include_usage, tool_choice=self.tool_choice),
            cast_to=object,
            options={"timeout": timeout},
            stream=True,
            stream_cls=openai.AsyncStream[dict[str, Any]],
        )
        assembler = Assembler()
        first: float | None = None
        async for chunk in stream:
            if first is None and chunk.get("choices"):
                first = time.monotonic()
            assembler.add(chunk)
        answer = assembler.answer()
        generation = time.monotonic() - first if first is not None else 0.0
        if answer.usage is not None:
            return Completion(answer, answer.usage, estimated=False, generation_seconds=generation)
        written = len(answer.content) + len(answer.reasoning) + sum(len(c.arguments) for c in answer.tool_calls)
        guess = TokenCount(estimate_tokens(request.messages), max(1, written // CHARS_PER_TOKEN))
        return Completion(answer, guess, estimated=True, generation_seconds=generation)


def context_exceeded(body: object) -> ContextExceeded | None:
    """A 400 that says the prompt is longer than the context: llama-server's `{"error": {"type":
    "exceed_context_size_error", "n_prompt_tokens": ..., "n_ctx": ...}}`, or an OpenAI-style
    `context_length_exceeded` code."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return None
    if inner.get("type") != "exceed_context_size_error" and inner.get("code") != "context_length_exceeded":
        return None
    prompt, context = inner.get("n_prompt_tokens"), inner.get("n_ctx")
    message = " ".join(str(inner.get("message") or "the prompt exceeds the context").split())[:500]
    return ContextExceeded(
        message,
        prompt_tokens=prompt if isinstance(prompt, int) else None,
        context=context if isinstance(context, int) else None,
    )


def _said(error: openai.APIError) -> str:
    """The server's own message, one line."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return " ".join(str(message).split())[:500]
    return " ".join(str(error.message).split())[:500]
