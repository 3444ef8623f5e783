"""Peak RSS (MiB) of a process holding a controller cache of 10,000 finished tasks and 1,000 nodes (bench/run.py).

The tasks look as a controller that ran them sees them: each went through the real moves
(`foreman.api.lifecycle.status`: placed, claimed, succeeded or failed) with an agent's result envelope (summary,
changed files, usage) and its `status.usage`, the three conditions a finished task carries, and the node label; a
tenth of them wait on an upstream.
"""

import resource
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import foreman.controller.loop  # noqa: F401 - everything a running controller has imported
from foreman.api.lifecycle import status
from foreman.api.models.envelope import ResultEnvelope, Usage
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.controller.cache import Cache

EMPTY = "--empty" in sys.argv
cache = Cache()
now = datetime.now(UTC)
PROMPT = "Review the pull request for correctness, style and test coverage; list every finding. " * 4
SUMMARY = "Reviewed the change: two findings (a missing None check in the parser, an untested error path). " * 3


def moved(task: AgenticTask, patch: dict[str, Any], version: int) -> AgenticTask:
    """The task after a status merge patch, as the watch delivers it."""
    body = task.to_wire()
    body["status"] = {**body.get("status", {}), **{k: v for k, v in patch.items() if v is not None}}
    body["metadata"]["resourceVersion"] = str(version)
    return AgenticTask.model_validate(body)


def finished(i: int) -> AgenticTask:
    node = f"node-{i % 1000}"
    created = AgenticTask.model_validate(
        {
            "metadata": {
                "name": f"task-{i}",
                "namespace": "ns",
                "uid": f"uid-{i}",
                "resourceVersion": "1",
                "creationTimestamp": now,
                "labels": {"foreman.dev/node": node},
            },
            "spec": {
                "kind": "review",
                "executor": "agent",
                "payload": {"prompt": PROMPT, "repo": "https://github.com/example/service", "branch": "main"},
                "requiredCapability": {"accelerator": "cuda", "minRAMGB": 8},
                "dependsOn": [f"task-{i - 1}"] if i % 10 else [],
            },
        }
    )
    placed = moved(created, status.placed(created, node, now), 2)
    running = moved(placed, status.claimed(placed, now + timedelta(seconds=1), f"{node}/worker-{i % 7}"), 3)
    usage = Usage(prompt_tokens=48_000 + i, completion_tokens=3_000 + i, total_tokens=51_000 + 2 * i, turns=18,
                  tool_calls=17, model="qwen2.5-coder-32b").to_wire()  # fmt: skip
    extra = {"usage": usage, "branch": f"foreman/task-{i}", "commit": f"{i:040x}", "changedFiles": ["src/parser.py"]}
    envelope = ResultEnvelope(kind="review", verdict="GO", summary=SUMMARY, extra=extra, elapsed_sec=312.5)
    end = now + timedelta(minutes=5)
    if i % 20:
        return moved(running, status.succeeded(running, end, envelope, {"usage": usage}), 4)
    return moved(running, status.failed(running, end, "Timeout", "no answer within 2700 s", result=envelope), 4)


for i in range(0 if EMPTY else 1000):
    node = {
        "metadata": {"name": f"node-{i}", "resourceVersion": str(i), "labels": {"pool": "a"}},
        "status": {
            "phase": "Ready",
            "lastHeartbeatTime": now,
            "capability": {"accelerator": "cuda", "availableRAMGB": 80, "maxContextTokens": 131072},
        },
    }
    cache.upsert_node(FleetNode.model_validate(node), now)
for i in range(0 if EMPTY else 10_000):
    cache.upsert_task(finished(i))


def peak_mib() -> float:
    """This process's peak RSS. NB: VmHWM where there is /proc: getrusage's ru_maxrss survives exec on Linux, so a
    probe started by a bigger process (bench/run.py, 110 MiB by then) reads at least that process's size."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


print(peak_mib())
