"""The built-in tools: their JSON-schema definitions (what the model sees) and what they do in the workspace.

Names and arguments are an API that prompts are written against: keep them exactly. Every failure (a bad path, a
command not allowed, a non-zero exit, a timeout) is a ToolError whose message goes back to the model as the result;
the task does not crash. File work runs in a thread, so a large grep never blocks the worker's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from foreman.api.models.agents import ToolName
from foreman.api.models.envelope import Verdict
from foreman.api.models.gates import OUTPUT_TAIL as GATE_TAIL
from foreman.api.models.gates import Gate, GateResult, GateStatus, allowed
from foreman.worker.agent import files, schedules
from foreman.worker.agent.errors import ToolError
from foreman.worker.agent.workspace import Workspace
from foreman.worker.sandbox.sandbox import Ran, Sandbox

READ_LIMIT = 20_000
"""Characters read_file returns at most (it says where it cut and how to read on)."""
GREP_LIMIT = 200
"""Matching lines grep returns at most."""
LIST_LIMIT = 500
OUTPUT_TAIL = 8_000
"""Characters of a command's output the model gets back (the end, where errors are)."""
ARGV_LIMIT = 100_000
"""Characters of a command line, all words together."""
RUN_TIMEOUT = 120.0
RUN_TIMEOUT_MAX = 1800.0
LARGE_FILE = 2_000_000
"""Files grep skips as too large to be source."""
READ_SCAN = 256 * 1024 * 1024
"""Bytes read_file looks through at most (to count lines and find the ones asked for)."""
EDIT_LIMIT = 8 * 1024 * 1024
"""Largest file edit_file takes."""


def _function(name: str, description: str, properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": list(required)}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


_PATH = {"type": "string", "description": "Path relative to the workspace."}

MODEL_VERDICTS: tuple[Verdict, ...] = ("GO", "NO-GO", "INCOMPLETE")
"""The verdicts a model may submit. The gates' (GATE-PASS, GATE-FAIL, GATE-ERROR) are the worker's to give, from
gates it ran itself, and SKIPPED would pass a task without its review step (which follows a GO) and a GATE-FAIL
escalate it to a bigger model with no gate run."""


DEFINITIONS: dict[ToolName, dict[str, Any]] = {
    "list_files": _function(
        "list_files",
        "List files and directories under a path, to the given depth.",
        {"path": {**_PATH, "default": "."}, "depth": {"type": "integer", "minimum": 1, "default": 2}},
        [],
    ),
    "read_file": _function(
        "read_file",
        f"Read a text file, with line numbers. Long output is cut at {READ_LIMIT} characters; read on with start_line.",
        {
            "path": _PATH,
            "start_line": {"type": "integer", "minimum": 1, "description": "First line to show (1-based)."},
            "end_line": {"type": "integer", "minimum": 1, "description": "Last line to show (inclusive)."},
        },
        ["path"],
    ),
    "write_file": _function(
        "write_file",
        "Create or overwrite a file with the given content (parent directories are created).",
        {"path": _PATH, "content": {"type": "string"}},
        ["path", "content"],
    ),
    "edit_file": _function(
        "edit_file",
        "Replace the text `old` with `new` in a file. `old` must occur exactly once; include surrounding lines to "
        "make it unique.",
        {"path": _PATH, "old": {"type": "string"}, "new": {"type": "string"}},
        ["path", "old", "new"],
    ),
    "grep": _function(
        "grep",
        f"Search files under a path for a regular expression (Python syntax); at most {GREP_LIMIT} matching lines.",
        {"pattern": {"type": "string"}, "path": {**_PATH, "default": "."}},
        ["pattern"],
    ),
    "run": _function(
        "run",
        "Run a command in the workspace: argv is a list of strings (no shell). Only commands this node allows may "
        "run. Returns the exit code and the end of the output.",
        {
            "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "timeout_seconds": {"type": "number", "minimum": 1, "maximum": RUN_TIMEOUT_MAX},
        },
        ["argv"],
    ),
    "submit_result": _function(
        "submit_result",
        "Finish the task: your verdict and a short summary of what you did and found. Call it exactly once, last.",
        {
            "verdict": {"type": "string", "enum": list(MODEL_VERDICTS)},
            "summary": {"type": "string"},
            "extra": {"type": "object", "description": "Optional structured details for whoever reads the result."},
        },
        ["verdict", "summary"],
    ),
}

_OFFERABLE: dict[str, dict[str, Any]] = dict([*DEFINITIONS.items(), (schedules.NAME, schedules.DEFINITION)])
"""The built-in tools, and those an Agent's `subtasks` adds."""


@dataclass(frozen=True)
class Toolbox:
    """The tools one task may use, bound to its workspace and the node's command allowlist."""

    workspace: Workspace
    allowed: tuple[ToolName, ...]
    allow_commands: tuple[tuple[str, ...], ...] = ()
    sandbox: Sandbox | None = None
    """Where `run` runs its commands; without one that works, the model is not offered `run` at all."""
    schedules: schedules.ScheduleTool | None = None
    """`set_schedule`, where the task's Agent allows it schedules (subtasks.maxSchedules above 0)."""

    @property
    def offered(self) -> tuple[str, ...]:
        runs = self.sandbox is not None and self.sandbox.runs_commands
        built_in = tuple(name for name in self.allowed if name != "run" or runs)
        return built_in + ((schedules.NAME,) if self.schedules is not None else ())

    def definitions(self) -> list[dict[str, Any]]:
        return [_OFFERABLE[name] for name in self.offered]

    def schemas(self) -> dict[str, dict[str, Any]]:
        """Each offered tool's parameters, by name (what a call written as text must match)."""
        return {name: _OFFERABLE[name]["function"]["parameters"] for name in self.offered}

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one tool; ToolError for anything the model should hear about (submit_result is the loop's)."""
        if name not in self.offered or name == "submit_result":
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self.offered)}")
        if name == schedules.NAME and self.schedules is not None:
            return await self.schedules.call(arguments)
        try:
            if name == "run":
                return await self.run(**arguments)
            function = getattr(self, name)
            result: str = await asyncio.to_thread(function, **arguments)
            return result
        except TypeError as error:
            raise ToolError(f"bad arguments for {name}: {error}") from None
        except OSError as error:
            raise ToolError(f"{name}: {error.strerror or error}") from None

    # -- files (run in a thread) -------------------------------------------------------------------------------

    def list_files(self, path: str = ".", depth: int = 2) -> str:
        top = self._open(path, "folder")
        lines: list[str] = []
        prefix = "" if top.path == "." else f"{top.path}/"
        try:
            for entry, _ in files.walk(top.fd, depth=max(1, int(depth))):
                lines.append(f"{prefix}{entry.path}" + ("/" if entry.folder else ""))
                if len(lines) >= LIST_LIMIT:
                    return "\n".join([*sorted(lines), f"[cut at {LIST_LIMIT} entries: list a subdirectory]"])
        finally:
            os.close(top.fd)
        return "\n".join(sorted(lines)) or "(empty)"

    def read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        opened = self._open(path, "read")
        first = max(1, int(start_line or 1))
        last = int(end_line) if end_line else None
        try:
            shown, total, cut_at = _lines(opened, first, last)
        finally:
            os.close(opened.fd)
        if cut_at is not None:
            shown.append(f"[cut: lines {first}-{cut_at - 1} of {total} shown; read on with start_line={cut_at}]")
        return "\n".join(shown) if shown else f"({path} has {total} lines; none in {first}-{last or total})"

    def write_file(self, path: str, content: str) -> str:
        data = content.encode()
        opened = self._open(path, "write")
        try:
            files.write_all(opened.fd, data)
        finally:
            os.close(opened.fd)
        return f"wrote {len(data)} bytes to {path}"

    def edit_file(self, path: str, old: str, new: str) -> str:
        opened = self._open(path, "write")
        try:
            text = _whole_text(opened, path)
            count = text.count(old) if old else 0
            if count != 1:
                raise ToolError(
                    f"`old` occurs {count} times in {path}; it must occur exactly once"
                    + (" (add surrounding lines to make it unique)" if count > 1 else "")
                )
            files.write_all(opened.fd, text.replace(old, new, 1).encode())
        finally:
            os.close(opened.fd)
        return f"edited {path}: replaced {len(old)} characters with {len(new)}"

    def grep(self, pattern: str, path: str = ".") -> str:
        try:
            expression = re.compile(pattern)
        except re.error as error:
            raise ToolError(f"invalid regular expression {pattern!r}: {error}") from None
        try:
            top = self._open(path, "folder")
        except ToolError as error:
            if "not a directory" not in str(error):
                raise
            return "\n".join(self._grep_file(self._open(path, "read"), expression, [])) or "(no matches)"
        found: list[str] = []
        prefix = "" if top.path == "." else f"{top.path}/"
        try:
            for entry, folder in files.walk(top.fd):
                if entry.folder:
                    continue
                name = entry.path.rsplit("/", 1)[-1]
                with contextlib.suppress(ToolError, OSError):
                    opened = files.open_file_at(folder, name, f"{prefix}{entry.path}")
                    self._grep_file(opened, expression, found)
                if len(found) >= GREP_LIMIT:
                    return "\n".join(
                        [*found[:GREP_LIMIT], f"[cut at {GREP_LIMIT} matches: narrow the pattern or path]"]
                    )
        finally:
            os.close(top.fd)
        return "\n".join(found) or "(no matches)"

    def _grep_file(self, opened: files.Opened, expression: re.Pattern[str], found: list[str]) -> list[str]:
        try:
            if opened.size > LARGE_FILE:
                return found
            data = files.read_bytes(opened.fd, LARGE_FILE)
        finally:
            os.close(opened.fd)
        if b"\0" in data[:8192]:
            return found
        for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
            if expression.search(line):
                found.append(f"{opened.path}:{number}: {line[:300]}")
                if len(found) >= GREP_LIMIT:
                    break
        return found

    def _open(self, path: str, mode: files.Mode) -> files.Opened:
        return files.open_in(str(self.workspace.root), path, mode)

    # -- commands ----------------------------------------------------------------------------------------------

    async def run(self, argv: list[str], timeout_seconds: float | None = None) -> str:
        if not isinstance(argv, list) or not argv or not all(isinstance(part, str) for part in argv):
            raise ToolError("argv must be a non-empty list of strings")
        if refused := self.refusal(argv):
            raise ToolError(refused)
        timeout = min(float(timeout_seconds or RUN_TIMEOUT), RUN_TIMEOUT_MAX)
        ran = await self.execute(argv, timeout)
        if ran.returncode is None:
            raise ToolError(f"{' '.join(argv)} timed out after {timeout:g} s and was killed")
        tail = ran.output[-OUTPUT_TAIL:]
        cut = f"[output cut: last {len(tail)} of {ran.total_bytes} bytes]\n" if ran.total_bytes > len(tail) else ""
        limit = f"{ran.limit}\n" if ran.limit else ""
        report = f"exit code {ran.returncode}\n{limit}{cut}{tail}"
        if ran.returncode != 0:
            raise ToolError(report)
        return report

    async def gate(self, gate: Gate) -> GateResult:
        """Run one verify gate as `run` would run it (allowlist, sandbox, limits), under the gate's own timeout; a
        gate that cannot run here fails, with the reason as its output."""
        if refused := self.refusal(gate.argv):
            return GateResult(name=gate.name, status="failed", output_tail=refused[-GATE_TAIL:])
        started = time.monotonic()
        ran = await self.execute(gate.argv, float(gate.timeout_seconds))
        status: GateStatus = "timedOut" if ran.returncode is None else "passed" if ran.returncode == 0 else "failed"
        return GateResult(
            name=gate.name, status=status, exit_status=ran.returncode, output_tail=ran.output[-GATE_TAIL:],
            output_bytes=ran.total_bytes, seconds=round(time.monotonic() - started, 3), limit=ran.limit,
        )  # fmt: skip

    def refusal(self, argv: Sequence[str]) -> str | None:
        """Why argv may not run here, or None."""
        if any("\0" in part for part in argv) or sum(len(part) for part in argv) > ARGV_LIMIT:
            return f"argv must hold no NUL bytes and at most {ARGV_LIMIT} characters"
        try:
            [part.encode() for part in argv]
        except UnicodeEncodeError as error:
            return f"argv cannot be encoded as UTF-8: {error.reason}"
        if not allowed(argv, self.allow_commands):
            offered = "; ".join(" ".join(prefix) for prefix in self.allow_commands) or "none"
            return f"command not allowed on this node: {' '.join(argv)} (allowed prefixes: {offered})"
        if self.sandbox is None or not self.sandbox.runs_commands:
            return "this node runs no commands (no sandbox works here)"
        return None

    async def execute(self, argv: Sequence[str], seconds: float) -> Ran:
        """Run an allowed argv in the sandbox; only the tail of its output is held, whatever it prints."""
        assert self.sandbox is not None
        return await self.sandbox.run(
            argv, workspace=self.workspace.root, home=self.workspace.home, env=command_environment(self.workspace),
            time_limit=seconds, keep=OUTPUT_TAIL * 4,
        )  # fmt: skip


def command_environment(workspace: Workspace) -> dict[str, str]:
    """What a command sees: a PATH and a locale, HOME in the workspace, none of the worker's credentials."""
    environment = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in os.environ}
    return {**environment, "HOME": str(workspace.home), "CI": "true"}


def _lines(opened: files.Opened, first: int, last: int | None) -> tuple[list[str], int, int | None]:
    """Lines first..last of a file, numbered, within READ_LIMIT characters; every line counted, none held but
    those shown (a 600 MiB one-line file is cut in its first line). Returns them, the file's line count (to
    READ_SCAN bytes), and the line to read on from when cut."""
    shown: list[str] = []
    size = 0
    cut_at: int | None = None
    number = 0
    if b"\0" in os.pread(opened.fd, 8192, 0):
        raise ToolError(f"{opened.path}: a binary file")
    with os.fdopen(os.dup(opened.fd), "rb") as stream:
        scanned = 0
        while scanned < min(opened.size, READ_SCAN) and (line := stream.readline(READ_LIMIT + 1)):
            scanned += len(line)
            whole = line.endswith(b"\n")
            while not whole and scanned < min(opened.size, READ_SCAN) and (rest := stream.readline(1 << 20)):
                scanned += len(rest)  # the rest of a line longer than READ_LIMIT: counted, not kept
                whole = rest.endswith(b"\n")
            number += 1
            if number < first or (last is not None and number > last) or cut_at is not None:
                continue
            text = f"{number:>6}\t{line.decode(errors='replace').rstrip(chr(10))}"
            if size + len(text) > READ_LIMIT:
                if shown:
                    cut_at = number
                    continue
                text = text[:READ_LIMIT] + f" [line {number} cut at {READ_LIMIT} characters]"
            shown.append(text)
            size += len(text) + 1
    return shown, number, cut_at


def _whole_text(opened: files.Opened, shown: str) -> str:
    if opened.size > EDIT_LIMIT:
        raise ToolError(f"{shown}: {opened.size} bytes; edit_file takes files of at most {EDIT_LIMIT} (use write_file)")
    data = files.read_bytes(opened.fd, EDIT_LIMIT + 1)
    if b"\0" in data[:8192]:
        raise ToolError(f"{shown}: a binary file")
    return data.decode("utf-8", errors="replace")
