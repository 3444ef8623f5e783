"""The escape suite: a scripted model's `run` tries each way out of the sandbox that was tried on an unconfined worker,
through the agent executor's real code paths and the machine's real bubblewrap. Each test asserts that the attempt
failed AND that nothing outside changed: the secret unread, the outside file as it was, no process left behind, the
worker's memory flat."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from foreman.api.models.agents import AgentSpec
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.scripted_llm import Call, ScriptedLLM, Turn
from foreman.worker.executors.agent import AgentExecutor
from foreman.worker.executors.base import ExecutionContext
from tests.memory import peak_rss

pytestmark = pytest.mark.timeout(60, func_only=True)  # NB: it runs real processes in a real sandbox

SECRET = f"secret-{uuid.uuid4().hex}"
LIMITS = {"memoryMiB": 256, "processes": 64, "fileSizeMiB": 16, "cpuSeconds": 20}


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A worker's HOME with the credentials found on real hosts, and its environment holding an API key."""
    home = tmp_path / "worker-home"
    for relative in (".kube/config", ".foreman/dev/kubeconfig", ".foreman/dev/state.json", ".ssh/id_ed25519",
                     ".config/gh/hosts.yml", ".docker/config.json"):  # fmt: skip
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SECRET)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(home / ".kube/config"))
    monkeypatch.setenv("FOREMAN_LLM_KEY", SECRET)
    (tmp_path / "outside.txt").write_text("as it was")
    return home


async def attempt(tmp_path: Path, code: str, *, timeout: int = 60, **settings: Any) -> dict[str, Any]:
    """One agent task whose model runs `python3 -c CODE`, then submits: what the model got back, and the envelope."""
    script = [
        Turn(calls=[Call("run", {"argv": ["python3", "-c", code], "timeout_seconds": timeout})]),
        Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": "tried"})]),
    ]
    async with ScriptedLLM(script) as llm:
        config = {
            "endpoint": llm.base_url, "workspaceRoot": str(tmp_path / "workspaces"),
            "allowCommands": [["python3", "-c"]], "limits": LIMITS, **settings,
        }  # fmt: skip
        task = AgenticTask.new("escape", prompt="get out", executor="agent", namespace="default")
        agent = AgentSpec(tools=["read_file", "run", "submit_result"])
        envelope = await AgentExecutor().execute(task, ExecutionContext("node", 1, config, agent))
    results = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    return {"result": results[0], "envelope": envelope}


def left_behind(marker: str) -> list[int]:
    """Processes on the host whose command line carries the marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_credentials_of_the_worker_are_not_there(tmp_path: Path, host: Path) -> None:
    paths = [str(p) for p in host.rglob("*") if p.is_file()]  # noqa: ASYNC240
    code = (
        "import os, glob\n"
        "seen = [repr(dict(os.environ))]\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        for name in ('environ', 'cmdline'):\n"
        "            try: seen.append(repr(open(f'/proc/{pid}/{name}', 'rb').read()))\n"
        "            except OSError: pass\n"
        f"print('LEAKED' if any({SECRET[:20]!r} + {SECRET[20:]!r} in text for text in seen) else 'NOTHING')\n"
        f"for p in {paths!r} + glob.glob('/var/run/secrets/**', recursive=True):\n"
        "    try: print(p, open(p).read())\n"
        "    except OSError as e: print(p, 'refused', e.errno)\n"
        f"print('PARENT', os.path.exists('/proc/{os.getpid()}'))\n"
        f"print('ROOT', os.path.exists('/proc/self/root{host}'))\n"
    )
    outcome = await attempt(tmp_path, code)
    result = outcome["result"]
    assert result.startswith("exit code 0"), result
    assert SECRET not in result  # no file, no environment, no other process's environ or cmdline
    for path in paths:
        assert f"{path} refused 2" in result  # ENOENT: not there at all
    assert "NOTHING" in result
    assert "PARENT False" in result
    assert "ROOT False" in result
    assert outcome["envelope"].extra["sandbox"] == {"kind": "bubblewrap", "network": "none"}


async def test_writes_outside_the_workspace_change_nothing(tmp_path: Path, host: Path) -> None:
    outside = tmp_path / "outside.txt"
    code = (
        "import os\n"
        f"for p in ({str(outside)!r}, '/usr/bin/pwned', {str(host / 'pwned')!r}):\n"
        "    try: open(p, 'w').write('changed'); print('wrote', p)\n"
        "    except OSError as e: print('refused', p, e.errno)\n"
        "os.symlink('/etc', 'etc-link')\n"
    )
    result = (await attempt(tmp_path, code))["result"]
    assert "refused /usr/bin/pwned 30" in result  # EROFS
    assert outside.read_text() == "as it was"  # /tmp is the sandbox's own
    assert not (host / "pwned").exists()
    assert not Path("/usr/bin/pwned").exists()  # noqa: ASYNC240


async def test_another_tasks_workspace_is_not_there(tmp_path: Path, host: Path) -> None:
    other = tmp_path / "workspaces" / "other-task-abc" / "work"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text(SECRET)
    code = f"import os\nprint(os.path.exists({str(other)!r}), os.listdir({str(tmp_path / 'workspaces')!r}))"
    result = (await attempt(tmp_path, code))["result"]
    assert result.startswith("exit code 0"), result
    assert "False" in result
    assert "other-task-abc" not in result


async def test_the_hosts_loopback_ports_cannot_be_reached(tmp_path: Path, host: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\ns = socket.socket()\nprint('connect', s.connect_ex(('127.0.0.1', {port})))"
        result = (await attempt(tmp_path, code))["result"]
    assert "connect 111" in result, result  # ECONNREFUSED: the sandbox's own loopback, nothing listens there


async def test_network_host_is_an_opt_in_and_said(tmp_path: Path, host: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket\ns = socket.socket()\nprint('connect', s.connect_ex(('127.0.0.1', {port})))"
        outcome = await attempt(tmp_path, code, network="host")
    assert "connect 0" in outcome["result"]
    assert outcome["envelope"].extra["sandbox"]["network"] == "host"


async def test_a_fork_flood_is_capped_and_nothing_survives(tmp_path: Path, host: Path) -> None:
    marker = f"flood-{uuid.uuid4().hex}"
    code = (
        f"import os, time  # {marker}\n"
        "n = 0\n"
        "try:\n"
        "    for i in range(500):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(300); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e: print('stopped at', n, e.errno)\n"
    )
    result = (await attempt(tmp_path, code))["result"]
    assert "process limit 64 reached" in result, result
    assert left_behind(marker) == []


async def test_double_forked_setsid_children_die_with_the_command(tmp_path: Path, host: Path) -> None:
    marker = f"daemon-{uuid.uuid4().hex}"
    code = (
        f"import os, subprocess, sys  # {marker}\n"
        "for i in range(20):\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)  # " + marker + "'],\n"
        "                     start_new_session=True, stdout=subprocess.DEVNULL)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        import time; time.sleep(300)\n"
        "    os._exit(0)\n"
        "print('started')\n"
    )
    result = (await attempt(tmp_path, code))["result"]
    assert "started" in result
    assert left_behind(marker) == []


async def test_a_grandchild_holding_stdout_does_not_hold_the_run(tmp_path: Path, host: Path) -> None:
    code = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    code += "print('parent done')"
    started = time.monotonic()
    result = (await attempt(tmp_path, code, timeout=120))["result"]
    assert "parent done" in result
    assert time.monotonic() - started < 30  # not the 120 s timeout


async def test_a_memory_hog_is_killed_and_named(tmp_path: Path, host: Path) -> None:
    result = (await attempt(tmp_path, "x = bytearray(1024 * 1024 * 1024)\nprint('allocated')"))["result"]
    assert "killed: memory limit 256 MiB" in result, result
    assert "allocated" not in result


async def test_a_4_gib_file_stops_at_the_file_size_limit(tmp_path: Path, host: Path) -> None:
    code = "f = open('big', 'wb')\nfor i in range(4096): f.write(b'x' * 1024 * 1024)\nprint('written')"
    result = (await attempt(tmp_path, code))["result"]
    assert "file size limit 16 MiB reached" in result, result
    assert not (tmp_path / "workspaces").exists() or not list((tmp_path / "workspaces").rglob("big"))


async def test_output_of_100_mb_keeps_the_worker_flat(tmp_path: Path, host: Path) -> None:
    before = peak_rss()
    code = "import sys\nfor i in range(100): sys.stdout.write('y' * (1024 * 1024 - 1) + '\\n')\nprint('THE END')"
    result = (await attempt(tmp_path, code))["result"]
    assert result.rstrip().endswith("THE END")
    assert "[output cut: last 8000 of 104857600" in result or "of 1048576" in result, result[:200]
    assert len(result) < 10_000
    assert peak_rss() - before < 64 * 1024 * 1024


async def test_no_privileges_and_no_setuid(tmp_path: Path, host: Path) -> None:
    code = (
        "import os, subprocess\n"
        "status = open('/proc/self/status').read()\n"
        "print([l for l in status.splitlines() if l.startswith(('NoNewPrivs', 'CapEff', 'CapPrm'))])\n"
        "print('mount', subprocess.run(['mount', '-t', 'tmpfs', 'x', '/usr'], capture_output=True).returncode)\n"
        "print('hostname', open('/proc/sys/kernel/hostname').read().strip(), 'pid', os.getpid())\n"
    )
    result = (await attempt(tmp_path, code))["result"]
    assert "'NoNewPrivs:\\t1'" in result, result
    assert "'CapEff:\\t0000000000000000'" in result
    assert "mount 0" not in result
    assert "hostname foreman-sandbox" in result


async def test_unconfined_only_when_written_and_then_said(tmp_path: Path, host: Path) -> None:
    marker = f"loose-{uuid.uuid4().hex}"
    code = (
        f"import subprocess, sys  # {marker}\n"
        "for i in range(5): subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)  # "
        + marker
        + "'])\n"
        "print('unconfined run')"
    )
    outcome = await attempt(tmp_path, code, sandbox="none")
    assert "unconfined run" in outcome["result"]
    assert outcome["envelope"].extra["sandbox"]["kind"] == "unconfined"
    assert left_behind(marker) == []  # its process group is killed when it ends, even unconfined


async def test_without_a_sandbox_there_is_no_run_tool(
    tmp_path: Path, host: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no bwrap on it
    script = [Turn(calls=[Call("submit_result", {"verdict": "GO", "summary": "nothing to run"})])]
    async with ScriptedLLM(script) as llm:
        config = {"endpoint": llm.base_url, "workspaceRoot": str(tmp_path / "w"), "allowCommands": [["python3"]]}
        task = AgenticTask.new("no-run", prompt="x", executor="agent", namespace="default")
        agent = AgentSpec(tools=["run", "submit_result"])
        envelope = await AgentExecutor().execute(task, ExecutionContext("node", 1, config, agent))
    offered = [tool["function"]["name"] for tool in llm.requests[0]["tools"]]
    assert offered == ["submit_result"]
    assert envelope.extra["sandbox"]["kind"] == "unavailable"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["python3", "-c", "print(1)\0"], "no NUL bytes"),
        (["python3", "-c", "x" * 200_000], "at most 100000 characters"),
        (["python3", "-c", "print('\ud800')"], "cannot be encoded"),
    ],
)
async def test_bad_argv_is_a_tool_error(tmp_path: Path, host: Path, argv: list[str], message: str) -> None:
    script = [
        Turn(calls=[Call("run", json.dumps({"argv": argv}))]),
        Turn(calls=[Call("submit_result", {"verdict": "NO-GO", "summary": "bad"})]),
    ]
    async with ScriptedLLM(script, context_tokens=10**6) as llm:
        config = {"endpoint": llm.base_url, "workspaceRoot": str(tmp_path / "w"), "allowCommands": [["python3"]]}
        task = AgenticTask.new("bad", prompt="x", executor="agent", namespace="default")
        envelope = await AgentExecutor().execute(task, ExecutionContext("node", 1, config, AgentSpec(tools=["run"])))
    results = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert message in results[0], results[0]
    assert envelope.verdict == "NO-GO"
