"""Peak RSS (MiB) of a process holding a controller cache of 10,000 tasks and 1,000 nodes (run by bench/run.py)."""

import resource
import sys
from datetime import UTC, datetime

import foreman.controller.loop  # noqa: F401 - everything a running controller has imported
from foreman.api.models.resources import AgenticTask, FleetNode
from foreman.controller.cache import Cache

EMPTY = "--empty" in sys.argv
cache = Cache()
now = datetime.now(UTC)
PROMPT = "Review the pull request for correctness, style and test coverage; list every finding. " * 4

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
    task = {
        "metadata": {
            "name": f"task-{i}",
            "namespace": "ns",
            "uid": f"uid-{i}",
            "resourceVersion": str(i),
            "creationTimestamp": now,
            "labels": {"foreman.dev/node": f"node-{i % 1000}"},
        },
        "spec": {
            "kind": "review",
            "payload": {"prompt": PROMPT, "repo": "https://github.com/example/service", "branch": "main"},
            "requiredCapability": {"accelerator": "cuda", "minRAMGB": 8},
            "dependsOn": [f"task-{i - 1}"] if i % 10 else [],
        },
        "status": {
            "phase": "Scheduled" if i % 3 else "Pending",
            "assignedNode": f"node-{i % 1000}",
            "conditions": [
                {"type": "Scheduled", "status": "True", "reason": "FleetNodeAssigned", "lastTransitionTime": now}
            ],
        },
    }
    cache.upsert_task(AgenticTask.model_validate(task))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
