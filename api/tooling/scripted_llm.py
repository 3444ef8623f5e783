"""A scripted stand-in for a local OpenAI-compatible inference server (llama-server, Ollama, vLLM, mlx).

Tests never talk to a real model: they start a :class:`ScriptedLLM`, a real HTTP server on 127.0.0.1 that answers
``POST /v1/chat/completions`` with scripted assistant turns, streamed as server-sent events in the exact format real
servers use (role chunk, ``reasoning_content`` chunks, ``content`` chunks, tool-call fragments split anywhere, a
``finish_reason`` chunk, the ``include_usage`` chunk with empty ``choices``, then ``data: [DONE]``), and that fails
the way real servers fail: HTTP errors, a connection cut mid-stream, a model silent before the first byte, a 400 for
``stream_options``, a 500 for invalid tool-call JSON sent back in the history (llama.cpp #22072), a 400 for an empty
assistant message, a 400 when the prompt exceeds the context (llama-server's ``exceed_context_size_error``), and
503 on every endpoint while :attr:`ScriptedLLM.down` is set.

Also runnable as a process for demos: ``python -m foreman.api.tooling.scripted_llm --port PORT --script demo``
prints the base URL on its first stdout line and serves until SIGTERM/SIGINT. It ships in the package because
`foreman demo` runs it (a pip-installed Foreman has no tests/), not because anything in production talks to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = [
    "Call",
    "Fail",
    "Reply",
    "Script",
    "ScriptedLLM",
    "Turn",
    "demo_script",
]


@dataclass
class Call:
    """One tool call the scripted model makes."""

    name: str
    arguments: str | dict[str, Any]  # dict -> json.dumps; a str is sent as given (lets tests send broken JSON)
    id: str | None = None  # default: f"call_{n}", unique per server


@dataclass
class Turn:
    """One scripted assistant answer (streamed as SSE, or one JSON object when the request has no ``stream``)."""

    content: str = ""
    reasoning: str = ""  # sent as delta.reasoning_content chunks, before the content
    calls: list[Call] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" if calls else "stop"
    prompt_tokens: int | None = None  # default: len(json of the request's messages) // 4
    completion_tokens: int | None = None  # default: characters sent // 4, at least 1
    usage: bool = True  # send the usage chunk when the request asked for include_usage
    piece: int = 5  # content, reasoning and arguments go out in fragments of this many characters
    # close the connection abruptly after this many chunks (the role chunk counts): no finish_reason if it falls
    # before that chunk, and never [DONE]; a non-streamed request gets the connection closed and no answer at all
    cut_after: int | None = None
    delay: float = 0.0  # seconds before the response headers are sent (a slow / reasoning model)
    chunk_delay: float = 0.0  # seconds between chunks


@dataclass
class Fail:
    """The server answers an HTTP error instead of a stream."""

    status: int = 500
    message: str = "scripted failure"  # body {"error": {"message": ..., "type": "server_error", "code": status}}


Reply = Turn | Fail
Script = Sequence[Reply] | Callable[[dict[str, Any]], Reply]

_CHAT_PATH = "/v1/chat/completions"
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _error(status: int, message: str, type_: str, **extra: Any) -> web.Response:
    """An OpenAI-style error body (llama-server adds ``code``; so do we)."""
    return web.json_response({"error": {"message": message, "type": type_, "code": status, **extra}}, status=status)


def _bad_request(message: str) -> web.Response:
    return _error(400, message, "invalid_request_error")


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _arguments(call: Call) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def _estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """A deterministic stand-in for tokenisation: four characters of the JSON history per token."""
    return len(json.dumps(body.get("messages", []))) // 4


def _validate(body: dict[str, Any]) -> web.Response | None:
    """What a strict server rejects before generating anything; None when the request is acceptable."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _bad_request("'model' is a required property")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad_request("'messages' is a required property and must be a non-empty array")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return _bad_request("'tools' must be an array")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
                return _bad_request(f"tools[{i}]: expected {{'type': 'function', 'function': {{'name': ...}}}}")
    open_calls: set[str] | None = None  # the ids of the tool calls that tool messages may answer right now
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return _bad_request(f"messages[{i}]: each message needs a valid 'role'")
        role = message["role"]
        if role == "assistant":
            tool_calls = message.get("tool_calls") or []
            if not message.get("content") and not tool_calls:
                return _bad_request(f"messages[{i}]: assistant message must have either content or tool_calls")
            if not isinstance(tool_calls, list):
                return _bad_request(f"messages[{i}].tool_calls must be an array")
            open_calls = set()
            for j, tool_call in enumerate(tool_calls):
                function = tool_call.get("function") if isinstance(tool_call, dict) else None
                if not isinstance(function, dict) or not isinstance(tool_call.get("id"), str):
                    return _bad_request(f"messages[{i}].tool_calls[{j}]: needs 'id' and 'function'")
                arguments = function.get("arguments")
                if not isinstance(arguments, str):
                    return _bad_request(f"messages[{i}].tool_calls[{j}].function.arguments must be a string")
                try:
                    json.loads(arguments)
                except ValueError as exc:
                    # llama-server parses the history's arguments to render the chat template and answers 500.
                    return _error(
                        500,
                        f"Failed to parse tool call arguments as JSON: messages[{i}].tool_calls[{j}]: {exc}",
                        "server_error",
                    )
                open_calls.add(tool_call["id"])
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                return _bad_request(f"messages[{i}]: a tool message needs 'tool_call_id'")
            if open_calls is None or call_id not in open_calls:
                return _bad_request(
                    f"messages[{i}]: tool message with tool_call_id {call_id!r} does not follow an assistant message"
                    " with that tool call"
                )
        else:
            open_calls = None
    return None


class ScriptedLLM:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 whose "model" replays a script.

    ``script`` is a list of replies consumed one per accepted chat-completions request (then ``when_exhausted``,
    by default ``Fail(500, "script exhausted")``), or a callable that gets the request JSON and returns the reply.
    Requests rejected by validation, by ``reject_stream_options``, by the context size or by ``down`` consume nothing.
    :attr:`requests` records every chat-completions body received, rejected ones too (a body that is not a JSON
    object as ``{"_raw": text}``).

    Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``, ``GET /props``.
    """

    def __init__(
        self,
        script: Script,
        *,
        model: str = "scripted-model",
        models: Sequence[str] | None = None,
        reject_stream_options: bool = False,
        reject_tool_choice: bool = False,
        context_tokens: int = 32768,
        when_exhausted: Reply | None = None,
    ) -> None:
        self.model = model
        self.models: list[str] = list(models) if models is not None else [model]
        self.reject_stream_options = reject_stream_options
        self.reject_tool_choice = reject_tool_choice
        """Answer `tool_choice: "required"` with vLLM's 400 (a server started without a tool-call parser)."""
        self.context_tokens = context_tokens
        self.when_exhausted: Reply = when_exhausted if when_exhausted is not None else Fail(500, "script exhausted")
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []
        self.down = False
        self._script: Script = script
        self._next = 0  # the next reply of a list script
        self._calls = 0  # tool calls made, for default ids
        self._responses = 0  # responses made, for completion ids
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        """Bind 127.0.0.1 on a free port (or ``port``); return the base URL (``http://127.0.0.1:PORT/v1``)."""
        app = web.Application(middlewares=[self._down_middleware])
        app.router.add_post(_CHAT_PATH, self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/props", self._props)
        # handler_cancellation: a client that gives up (timeout) cancels the handler, as a real server stops work.
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; handlers still running (a delayed reply, a slow stream) are cancelled."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._handlers):
            task.cancel()
        await runner.cleanup()

    async def __aenter__(self) -> ScriptedLLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def set_script(self, script: Script) -> None:
        """Replace the script; a list starts again from its first reply."""
        self._script = script
        self._next = 0

    # -- endpoints ---------------------------------------------------------------------------------------------

    @web.middleware
    async def _down_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.down and request.path != _CHAT_PATH:  # the chat handler records the body first, then answers 503
            return self._unavailable()
        return await handler(request)

    @staticmethod
    def _unavailable() -> web.Response:
        return _error(503, "server unavailable", "unavailable_error")

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "scripted", "max_model_len": self.context_tokens}
            for name in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _props(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"default_generation_settings": {"n_ctx": self.context_tokens}, "model_alias": self.model}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await self._chat_inner(request)
        finally:
            self._handlers.discard(task)

    async def _chat_inner(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.requests.append({"_raw": raw.decode("utf-8", "replace")})
            if self.down:
                return self._unavailable()
            return _bad_request("the request body must be a JSON object")
        self.requests.append(body)
        if self.down:
            return self._unavailable()
        rejected = _validate(body)
        if rejected is not None:
            return rejected
        if self.reject_stream_options and "stream_options" in body:
            return _bad_request("Unrecognized request argument supplied: stream_options")
        if self.reject_tool_choice and body.get("tool_choice") == "required":
            return _bad_request('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be '
                                "set; tool_choice 'required' is not supported")  # fmt: skip
        estimate = _estimate_prompt_tokens(body)
        if estimate > self.context_tokens:
            return _error(
                400,
                f"request ({estimate} tokens) exceeds the available context size ({self.context_tokens} tokens)",
                "exceed_context_size_error",
                n_prompt_tokens=estimate,
                n_ctx=self.context_tokens,
            )
        try:
            reply = self._take(body)
        except Exception as exc:  # a broken callable script: make it visible to the client, not a bare 500
            return _error(500, f"script raised {exc!r}", "server_error")
        if isinstance(reply, Fail):
            return _error(reply.status, reply.message, "server_error")
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if body.get("stream"):
            return await self._stream(request, body, reply)
        return await self._whole(request, body, reply)

    def _take(self, body: dict[str, Any]) -> Reply:
        script = self._script
        if callable(script):
            return script(body)
        if self._next < len(script):
            reply = script[self._next]
            self._next += 1
            return reply
        return self.when_exhausted

    # -- answers -----------------------------------------------------------------------------------------------

    def _call_ids(self, turn: Turn) -> list[str]:
        ids = []
        for call in turn.calls:
            if call.id is not None:
                ids.append(call.id)
            else:
                ids.append(f"call_{self._calls}")
                self._calls += 1
        return ids

    @staticmethod
    def _finish_reason(turn: Turn) -> str:
        if turn.finish_reason is not None:
            return turn.finish_reason
        return "tool_calls" if turn.calls else "stop"

    @staticmethod
    def _usage(body: dict[str, Any], turn: Turn) -> dict[str, int]:
        prompt = turn.prompt_tokens if turn.prompt_tokens is not None else _estimate_prompt_tokens(body)
        if turn.completion_tokens is not None:
            completion = turn.completion_tokens
        else:
            sent = len(turn.reasoning) + len(turn.content) + sum(len(c.name) + len(_arguments(c)) for c in turn.calls)
            completion = max(1, sent // 4)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion_id(self) -> str:
        self._responses += 1
        return f"chatcmpl-scripted-{self._responses}"

    async def _whole(self, request: web.Request, body: dict[str, Any], turn: Turn) -> web.StreamResponse:
        if turn.cut_after is not None:  # no answer at all: the connection just closes
            return self._cut(request)
        message: dict[str, Any] = {"role": "assistant", "content": turn.content or (None if turn.calls else "")}
        if turn.reasoning:
            message["reasoning_content"] = turn.reasoning
        if turn.calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": _arguments(call)}}
                for call, call_id in zip(turn.calls, self._call_ids(turn), strict=True)
            ]
        return web.json_response(
            {
                "id": self._completion_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": self._finish_reason(turn)}],
                "usage": self._usage(body, turn),
            }
        )

    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[dict[str, Any]]:
        """Every chunk of the stream, in order (``[DONE]`` is not a chunk)."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        head = {"id": self._completion_id(), "object": "chat.completion.chunk", "created": int(time.time())}
        head["model"] = body["model"]

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            if include_usage:
                out["usage"] = None  # as OpenAI does: null on every chunk but the last
            return out

        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"reasoning_content": p}) for p in _pieces(turn.reasoning, turn.piece)]
        chunks += [chunk({"content": p}) for p in _pieces(turn.content, turn.piece)]
        for index, (call, call_id) in enumerate(zip(turn.calls, self._call_ids(turn), strict=True)):
            pieces = _pieces(_arguments(call), turn.piece)
            function = {"name": call.name, "arguments": pieces.pop(0) if pieces else ""}
            first = {"index": index, "id": call_id, "type": "function", "function": function}
            chunks.append(chunk({"tool_calls": [first]}))
            chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces]
        chunks.append(chunk({}, self._finish_reason(turn)))
        if include_usage and turn.usage:
            chunks.append({**head, "choices": [], "usage": self._usage(body, turn)})
        return chunks

    async def _stream(self, request: web.Request, body: dict[str, Any], turn: Turn) -> web.StreamResponse:
        chunks = self._chunks(body, turn)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            for n, data in enumerate(chunks):
                if turn.cut_after is not None and n >= turn.cut_after:
                    return self._cut(request, response)
                if n and turn.chunk_delay > 0:
                    await asyncio.sleep(turn.chunk_delay)
                await response.write(b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n")
            if turn.cut_after is not None:  # asked to cut after at least every chunk: still no [DONE]
                return self._cut(request, response)
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:  # the client went away mid-stream
            pass
        return response

    @staticmethod
    def _cut(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
        """Close the connection now: what was written is flushed, the chunked body is never terminated."""
        if request.transport is not None:
            request.transport.close()
        # aiohttp's write_eof on the closed transport raises ConnectionError, which it treats as a client reset.
        return response if response is not None else web.Response()


# -- the demo: a scripted model, not a real one ------------------------------------------------------------------


DEMO_FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": (
        "import unittest\n\nfrom calc import add\n\n\n"
        "class AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    ),
    "README.md": "# calc\n\nA tiny library with a bug: `add` subtracts.\n",
    ".gitignore": "__pycache__/\n",
}


def demo_repository(path: Path, files: dict[str, str] | None = None) -> Path:
    """The repository the demo script fixes: a git repository (branch main) whose one test fails; or of `files`."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in (files or DEMO_FILES).items():
        (path / name).write_text(text)
    author = ["-c", "user.name=Demo", "-c", "user.email=demo@example.com"]
    for args in (
        ["init", "--quiet", "--initial-branch=main"],
        ["add", "."],
        [*author, "commit", "--quiet", "-m", "calc"],
    ):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)
    return path


def demo_script(request: dict[str, Any]) -> Reply:
    """A scripted model (not a real one) that fixes the demo workspace's bug, one tool call per turn.

    The workspace is a git repository with ``calc.py`` (``add`` subtracts) and a failing ``test_calc.py``. The reply
    depends only on how many ``tool`` messages the history holds: list the files, read ``calc.py``, fix it, run the
    tests, then submit the result.
    """
    done = sum(1 for m in request.get("messages", []) if isinstance(m, dict) and m.get("role") == "tool")
    if done == 0:
        return Turn("Let me look at the files.", calls=[Call("list_files", {"path": "."})])
    if done == 1:
        return Turn("Let me read calc.py.", calls=[Call("read_file", {"path": "calc.py"})])
    if done == 2:
        return Turn(
            "add() subtracts; fixing it.",
            calls=[Call("edit_file", {"path": "calc.py", "old": "return a - b", "new": "return a + b"})],
        )
    if done == 3:
        return Turn("Running the tests.", calls=[Call("run", {"argv": ["python3", "-m", "unittest", "-q"]})])
    return Turn(
        "The tests pass; submitting.",
        calls=[
            Call(
                "submit_result",
                {"verdict": "GO", "summary": "Fixed add() in calc.py: it subtracted; the tests pass now."},
            )
        ],
    )


SPLIT_FILES = {
    **DEMO_FILES,
    "shout.py": "def shout(text):\n    return text.lower()\n",
    "test_shout.py": (
        "import unittest\n\nfrom shout import shout\n\n\n"
        "class ShoutTest(unittest.TestCase):\n    def test_shout(self):\n        self.assertEqual(shout('hi'), 'HI')\n"
    ),
    "README.md": "# calc and shout\n\nTwo bugs in two files: `add` subtracts, `shout` whispers.\n",
}
SPLIT_FIXES = (
    {"file": "calc.py", "old": "return a - b", "new": "return a + b", "test": "test_calc"},
    {"file": "shout.py", "old": "return text.lower()", "new": "return text.upper()", "test": "test_shout"},
)
"""The two fixes the planner of `split_script` hands out, one child each."""


def split_script(request: dict[str, Any]) -> Reply:
    """A scripted planner and its fixers (not a real model): the planner (offered `submit_task`) gives each of
    SPLIT_FIXES to a child, waits for both, and answers GO when both passed; a fixer edits the file its inputs name,
    runs that file's test, and answers GO when it passes."""
    messages = [m for m in request.get("messages", []) if isinstance(m, dict)]
    results = [str(m.get("content") or "") for m in messages if m.get("role") == "tool"]
    offered = {tool["function"]["name"] for tool in request.get("tools", [])}
    if "submit_task" in offered:
        if len(results) < len(SPLIT_FIXES):
            fix = SPLIT_FIXES[len(results)]
            return Turn(
                f"Handing {fix['file']} to a fixer.",
                calls=[
                    Call(
                        "submit_task",
                        {
                            "agent": "fixer",
                            "prompt": f"Fix {fix['file']} so that {fix['test']} passes.",
                            "payload": fix,
                        },
                    )
                ],
            )
        names = [json.loads(result)["name"] for result in results[: len(SPLIT_FIXES)]]
        if len(results) == len(SPLIT_FIXES):
            return Turn("Waiting for the fixers.", calls=[Call("wait_for_tasks", {"names": names})])
        verdicts = [task.get("verdict") for task in json.loads(results[-1]).get("tasks", [])]
        verdict = "GO" if verdicts == ["GO"] * len(names) else "NO-GO"
        summary = f"{len(names)} sub-tasks, verdicts {verdicts}: " + ", ".join(names)
        return Turn("Done.", calls=[Call("submit_result", {"verdict": verdict, "summary": summary})])
    task = next(str(m.get("content")) for m in messages if m.get("role") == "user")
    fix = next(fix for fix in SPLIT_FIXES if f"file: {fix['file']}" in task)
    if not results:
        return Turn("Fixing.", calls=[Call("edit_file", {"path": fix["file"], "old": fix["old"], "new": fix["new"]})])
    if len(results) == 1:
        return Turn("Testing.", calls=[Call("run", {"argv": ["python3", "-m", "unittest", "-q", fix["test"]]})])
    verdict = "GO" if results[-1].startswith("exit code 0") else "NO-GO"
    return Turn("Done.", calls=[Call("submit_result", {"verdict": verdict, "summary": f"fixed {fix['file']}"})])


def bench_script(turns: int, delay: float) -> Callable[[dict[str, Any]], Reply]:
    """A model that takes `delay` seconds per answer and makes one read/edit-kind tool call per turn: a file written,
    then read and edited in turn, then submit_result at turn `turns` (what `make bench` measures the loop with)."""

    def reply(request: dict[str, Any]) -> Reply:
        done = sum(1 for m in request.get("messages", []) if isinstance(m, dict) and m.get("role") == "tool")
        if done == 0:
            call = Call("write_file", {"path": "notes.txt", "content": "version 0\n" + "line\n" * 200})
        elif done >= turns - 1:
            call = Call("submit_result", {"verdict": "GO", "summary": f"done after {turns} turns"})
        elif done % 2:
            call = Call("read_file", {"path": "notes.txt"})
        else:
            call = Call("edit_file", {"path": "notes.txt", "old": f"version {done - 2}", "new": f"version {done}"})
        return Turn("Working.", calls=[call], delay=delay, piece=64)

    return reply


SCRIPTS: dict[str, Script] = {"demo": demo_script}


async def _serve(port: int, script: Script, model: str, context_tokens: int) -> None:
    server = ScriptedLLM(script, model=model, context_tokens=context_tokens)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start(port)
    sys.stdout.write(server.base_url + "\n")  # NB: the process's protocol: its first line is the URL
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m foreman.api.tooling.scripted_llm", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="demo")
    parser.add_argument("--model", default="scripted-model")
    parser.add_argument("--context-tokens", type=int, default=32768)
    parser.add_argument("--repository", type=Path, help="first create the demo script's git repository here")
    parser.add_argument("--bench", nargs=2, metavar=("TURNS", "DELAY"), help="the bench script instead of --script")
    args = parser.parse_args(argv)
    if args.repository is not None:
        demo_repository(args.repository)
    with contextlib.suppress(KeyboardInterrupt):
        script = bench_script(int(args.bench[0]), float(args.bench[1])) if args.bench else SCRIPTS[args.script]
        asyncio.run(_serve(args.port, script, args.model, args.context_tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
