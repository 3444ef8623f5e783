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
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foreman.api.models.agents import ToolName
from foreman.api.models.envelope import VERDICTS
from foreman.worker.agent.workspace import ToolError, Workspace

READ_LIMIT = 20_000
"""Characters read_file returns at most (it says where it cut and how to read on)."""
GREP_LIMIT = 200
"""Matching lines grep returns at most."""
LIST_LIMIT = 500
OUTPUT_TAIL = 8_000
"""Characters of a command's output the model gets back (the end, where errors are)."""
RUN_TIMEOUT = 120.0
RUN_TIMEOUT_MAX = 1800.0
LARGE_FILE = 2_000_000
"""Files grep skips as too large to be source."""


def _function(name: str, description: str, properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": list(required)}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


_PATH = {"type": "string", "description": "Path relative to the workspace."}
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
            "verdict": {"type": "string", "enum": list(VERDICTS)},
            "summary": {"type": "string"},
            "extra": {"type": "object", "description": "Optional structured details for whoever reads the result."},
        },
        ["verdict", "summary"],
    ),
}


@dataclass(frozen=True)
class Toolbox:
    """The tools one task may use, bound to its workspace and the node's command allowlist."""

    workspace: Workspace
    allowed: tuple[ToolName, ...]
    allow_commands: tuple[tuple[str, ...], ...] = ()

    def definitions(self) -> list[dict[str, Any]]:
        return [DEFINITIONS[name] for name in self.allowed]

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one tool; ToolError for anything the model should hear about (submit_result is the loop's)."""
        if name not in self.allowed or name == "submit_result":
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self.allowed)}")
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
        top = self.workspace.resolve(path)
        if not top.is_dir():
            raise ToolError(f"{path}: not a directory")
        lines: list[str] = []
        for current, directories, files in os.walk(top):
            here = Path(current)
            level = len(here.relative_to(top).parts)
            directories[:] = sorted(d for d in directories if d != ".git")
            if level >= max(1, int(depth)):
                directories[:] = []
            for entry in [*(f"{d}/" for d in directories), *sorted(files)]:
                lines.append(self.workspace.relative(here / entry.rstrip("/")) + ("/" if entry.endswith("/") else ""))
                if len(lines) >= LIST_LIMIT:
                    return "\n".join([*sorted(lines), f"[cut at {LIST_LIMIT} entries: list a subdirectory]"])
        return "\n".join(sorted(lines)) or "(empty)"

    def read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        text = _text(self.workspace.resolve(path), path)
        lines = text.splitlines()
        first = max(1, int(start_line or 1))
        last = min(len(lines), int(end_line or len(lines)))
        shown: list[str] = []
        size = 0
        for number in range(first, last + 1):
            line = f"{number:>6}\t{lines[number - 1]}"
            if size + len(line) > READ_LIMIT and shown:
                shown.append(
                    f"[cut: lines {first}-{number - 1} of {len(lines)} shown; read on with start_line={number}]"
                )
                break
            shown.append(line)
            size += len(line) + 1
        return "\n".join(shown) if shown else f"({path} has {len(lines)} lines; none in {first}-{last})"

    def write_file(self, path: str, content: str) -> str:
        target = self.workspace.resolve(path, for_writing=True)
        if target.is_dir():
            raise ToolError(f"{path}: is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return f"wrote {len(content.encode())} bytes to {path}"

    def edit_file(self, path: str, old: str, new: str) -> str:
        target = self.workspace.resolve(path, for_writing=True)
        text = _text(target, path)
        count = text.count(old) if old else 0
        if count != 1:
            raise ToolError(
                f"`old` occurs {count} times in {path}; it must occur exactly once"
                + (" (add surrounding lines to make it unique)" if count > 1 else "")
            )
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        return f"edited {path}: replaced {len(old)} characters with {len(new)}"

    def grep(self, pattern: str, path: str = ".") -> str:
        try:
            expression = re.compile(pattern)
        except re.error as error:
            raise ToolError(f"invalid regular expression {pattern!r}: {error}") from None
        top = self.workspace.resolve(path)
        files = [top] if top.is_file() else _files_under(top)
        found: list[str] = []
        for file in files:
            with contextlib.suppress(ToolError, OSError):
                for number, line in enumerate(_text(file, str(file)).splitlines(), 1):
                    if expression.search(line):
                        found.append(f"{self.workspace.relative(file)}:{number}: {line[:300]}")
                        if len(found) >= GREP_LIMIT:
                            return "\n".join([*found, f"[cut at {GREP_LIMIT} matches: narrow the pattern or path]"])
        return "\n".join(found) or "(no matches)"

    # -- commands ----------------------------------------------------------------------------------------------

    async def run(self, argv: list[str], timeout_seconds: float | None = None) -> str:
        if not isinstance(argv, list) or not argv or not all(isinstance(part, str) for part in argv):
            raise ToolError("argv must be a non-empty list of strings")
        if not allowed(argv, self.allow_commands):
            offered = "; ".join(" ".join(prefix) for prefix in self.allow_commands) or "none"
            raise ToolError(f"command not allowed on this node: {' '.join(argv)} (allowed prefixes: {offered})")
        timeout = min(float(timeout_seconds or RUN_TIMEOUT), RUN_TIMEOUT_MAX)
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=self.workspace.root, env=command_environment(self.workspace),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout or cancel kills its children too
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            raise ToolError(f"{' '.join(argv)} timed out after {timeout:g} s and was killed") from None
        except BaseException:
            _kill_group(process.pid)
            await process.wait()
            raise
        text = output.decode(errors="replace")
        tail = text[-OUTPUT_TAIL:]
        cut = f"[output cut: last {OUTPUT_TAIL} of {len(text)} characters]\n" if len(text) > OUTPUT_TAIL else ""
        report = f"exit code {process.returncode}\n{cut}{tail}"
        if process.returncode != 0:
            raise ToolError(report)
        return report


def allowed(argv: Sequence[str], prefixes: Sequence[Sequence[str]]) -> bool:
    """Whether argv starts with one of the node's allowed prefixes, word for word."""
    return any(len(argv) >= len(prefix) > 0 and list(argv[: len(prefix)]) == list(prefix) for prefix in prefixes)


def command_environment(workspace: Workspace) -> dict[str, str]:
    """What a command sees: a PATH and a locale, HOME in the workspace, none of the worker's credentials."""
    environment = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in os.environ}
    return {**environment, "HOME": str(workspace.home), "CI": "true"}


def _text(path: Path, shown: str) -> str:
    if not path.is_file():
        raise ToolError(f"{shown}: no such file")
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise ToolError(f"{shown}: a binary file")
    return data.decode("utf-8", errors="replace")


def _files_under(top: Path) -> list[Path]:
    files: list[Path] = []
    for current, directories, names in os.walk(top):
        directories[:] = sorted(d for d in directories if d != ".git")
        for name in sorted(names):
            path = Path(current) / name
            if not path.is_symlink() and path.stat().st_size <= LARGE_FILE:
                files.append(path)
    return files


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
