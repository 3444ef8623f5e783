"""Deliveries (issue 33, part 7): how fast the notifier delivers the results of 1,000 finished tasks to a real
webhook receiver (signed, verified there), and the apiserver writes it adds per delivered task, counted in the
apiserver's audit log (target: 1 status write per task, batched when several sinks finish together).

Run from the repository root: `.venv/bin/python bench/deliveries.py [--tasks 1000]` (needs `make control-plane`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).parents[1]))  # NB: the test suite's receiver (tests/servers/receiver.py)

from foreman.api.http.client import Kube
from foreman.api.models.tasks import AgenticTask
from foreman.api.runtime.daemon import configure_logging
from foreman.api.tooling.install import install
from foreman.api.tooling.localcluster import LocalCluster
from foreman.notifier.loop import Notifier, NotifierConfig
from foreman.notifier.secrets import SecretReader
from foreman.notifier.sinks import Sender
from tests.servers.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def prepare(kube: Kube, namespace: str, tasks: int, notify: list[dict[str, Any]]) -> None:
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    labels = {"foreman.dev/notifier": "true"}
    secret = {"name": "hook", "namespace": namespace, "labels": labels}
    await kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": secret, "stringData": {"signing": SECRET}})
    limit = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with limit:
            body = {
                "metadata": {"name": f"done-{i}", "namespace": namespace},
                "spec": {"kind": "verify", "notify": notify},
            }
            await kube.create(AgenticTask.model_validate(body))
            result = {"kind": "verify", "verdict": "GO", "summary": f"task {i} went well"}
            status = {"phase": "Succeeded", "verdict": "GO", "finishedAt": "2026-12-07T09:00:00Z", "result": result}
            await kube.patch_status(AgenticTask, f"done-{i}", status, namespace=namespace)

    await asyncio.gather(*(one(i) for i in range(tasks)))


def status_writes(cluster: LocalCluster, offset: int, namespace: str) -> Counter[str]:
    """Write calls on agentictasks in `namespace` since `offset` of the audit log, by verb and subresource."""
    counts: Counter[str] = Counter()
    with cluster.audit_log.open() as log:
        log.seek(offset)
        for line in log.read().splitlines():
            entry = json.loads(line)
            ref = entry.get("objectRef", {})
            if entry.get("stage") != "ResponseComplete" or ref.get("namespace") != namespace:
                continue
            if ref.get("resource") == "agentictasks" and entry["verb"] in ("create", "update", "patch"):
                counts[f"{entry['verb']} {ref.get('subresource') or ''}".strip()] += 1
    return counts


async def round_of(
    cluster: LocalCluster, kube: Kube, receiver: Receiver, name: str, tasks: int, sinks: int
) -> dict[str, float]:
    hook = {"webhook": {"url": f"{receiver.url}/hook", "signingSecretRef": {"name": "hook", "key": "signing"}}}
    notify = [hook, {"cloudevents": {"url": f"{receiver.url}/events"}}, {"log": {}}][:sinks]
    namespace = f"bench-{name}"
    await prepare(kube, namespace, tasks, notify)
    offset = cluster.audit_log.stat().st_size
    received = len(receiver.received)
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(kube, Sender(session, SecretReader(kube)), NotifierConfig(namespaces=(namespace,)))
        stop = asyncio.Event()
        started = time.monotonic()
        running = asyncio.create_task(notifier.run(stop))
        while notifier.metrics.status_writes._value.get() < tasks:
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
        stop.set()
        await running
    listing = await kube.list(AgenticTask, namespace=namespace)
    delivered = sum(d.state == "Delivered" for task in listing.items for d in task.status.deliveries)
    writes = status_writes(cluster, offset, namespace)
    got = receiver.received[received:]
    return {
        "tasks": tasks,
        "sinks": sinks,
        "delivered": delivered,
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(delivered / elapsed, 1),
        "bad_signatures": sum(r.answered == 401 for r in got),
        "status_writes_per_task": round(sum(writes.values()) / tasks, 3),
    }


async def rounds(cluster: LocalCluster, kube: Kube, tasks: int = 1000) -> dict[str, dict[str, float]]:
    """One sink per task (`tasks` of them), then three sinks each (a fifth as many): the batched case."""
    receiver = Receiver(SECRET)
    await receiver.start()
    try:
        return {
            "one-sink": await round_of(cluster, kube, receiver, "one-sink", tasks, 1),
            "three-sinks": await round_of(cluster, kube, receiver, "three-sinks", tasks // 5, 3),
        }
    finally:
        await receiver.stop()


async def run(cluster: LocalCluster, tasks: int) -> None:
    async with await Kube.connect(str(cluster.kubeconfig())) as kube:
        await install(kube)
        for name, figures in (await rounds(cluster, kube, tasks)).items():
            sys.stdout.write(f"{name}: {json.dumps(figures)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    options = parser.parse_args()
    configure_logging(json=True, level="warning")
    cluster = LocalCluster.start(Path(tempfile.mkdtemp(prefix="foreman-bench-notify-")), audit=True)
    try:
        asyncio.run(run(cluster, options.tasks))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
