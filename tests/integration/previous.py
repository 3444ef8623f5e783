"""A cluster as the previous release left it: its CRDs, RBAC and policies (tests/previous_release/, the manifests/ of
commit 6716679, 2026-12-02, the last before this round's CRD changes: a snapshot, so a shallow clone has it too) and a
fleet written in its schema, to upgrade and read back (README, "Upgrade notes")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from foreman.api.http.client import Kube
from foreman.api.http.features import for_server
from foreman.api.models.agents import Agent
from foreman.api.models.base import GROUP
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.install import wait_established
from tests.integration.helpers import difference

SNAPSHOT = Path(__file__).resolve().parents[1] / "previous_release"
COMMIT = "67166792b101d5f4279fbd479783f7b38a6e9ac8"
API = f"{GROUP}/v1alpha1"
NAMESPACE = "team"


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Path under manifests/ at COMMIT → its documents."""
    return {
        str(path.relative_to(SNAPSHOT)): [d for d in yaml.safe_load_all(path.read_text()) if d]
        for path in sorted(SNAPSHOT.rglob("*.yaml"))
    }


def _object(kind: str, name: str, spec: dict[str, Any], namespace: str | None = NAMESPACE, **meta: Any) -> Any:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, "namespace": namespace, **meta}, "spec": spec}


FLEET = [
    _object("FleetNode", "gpu-01", {"nodeName": "gpu-01", "roles": ["build"], "maxConcurrentTasks": 2}, None,
            labels={"site": "lab"}),
    _object("TaskQueue", "team", {"weight": 3, "maxRunning": 4, "namespaceSelector": {"matchLabels": {"q": "team"}}},
            None),
    _object("Agent", "fixer", {"model": "qwen2.5-coder:7b", "systemPrompt": "Fix the failing test.", "maxTurns": 12}),
    _object("AgenticTask", "fix-it", {
        "kind": "issue-fix", "agentRef": "fixer", "payload": {"repo": "/srv/repos/app", "issue": "42"},
        "requiredCapability": {"accelerator": "any", "minRAMGB": 8, "minContextTokens": 8192},
        "priority": 5, "retries": 2, "queue": "team", "timeoutSeconds": 600,
    }),
    _object("AgenticTask", "check", {"kind": "verify", "dependsOn": ["fix-it"], "payload": {"command": "make test"}}),
    _object("AgenticTask", "done", {"kind": "freeform", "payload": {"prompt": "say hi"}}),
    _object("TaskSchedule", "nightly", {
        "schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "concurrencyPolicy": "Forbid", "catchUp": "Skip",
        "taskTemplate": {"metadata": {"labels": {"kind": "nightly"}},
                         "spec": {"kind": "verify", "payload": {"command": "make test"}}},
    }),
]  # fmt: skip
STATUSES: list[tuple[type[AgenticTask] | type[FleetNode], str, str | None, dict[str, Any]]] = [
    (FleetNode, "gpu-01", None, {
        "phase": "Ready", "lastHeartbeatTime": "2026-12-02T01:00:00Z", "agentVersion": "0.1.0", "os": "linux",
        "arch": "amd64", "capability": {"accelerator": "cuda", "acceleratorCount": 1, "totalRAMGB": 64.0,
                                        "availableRAMGB": 60.0, "maxContextTokens": 32768,
                                        "installedModels": ["qwen2.5-coder:7b"]},
    }),
    (AgenticTask, "done", NAMESPACE, {
        "phase": "Succeeded", "assignedNode": "gpu-01", "verdict": "GO", "attempts": 1,
        "startedAt": "2026-12-02T01:00:00Z", "finishedAt": "2026-12-02T01:01:00Z",
        "result": {"schemaVersion": "foreman.v1", "kind": "freeform", "verdict": "GO", "summary": "hi",
                   "elapsedSec": 60.0},
    }),
]  # fmt: skip


async def install(kube: Kube) -> None:
    """The previous release's `foreman install` (as it adapted its manifests to the server) and its fleet."""
    release = await kube.server_version()
    documents = [d for file in manifests().values() for d in file]
    for manifest in for_server(documents, release):
        await kube.apply(manifest)
    async with asyncio.timeout(30):
        for crd in (d for d in documents if d["kind"] == "CustomResourceDefinition"):
            await wait_established(kube, crd["metadata"]["name"])
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for manifest in FLEET:
        await kube.apply(manifest)
    for model, name, namespace, status in STATUSES:
        await kube.patch_status(model, name, status, namespace=namespace)


async def fleet(kube: Kube) -> dict[str, dict[str, Any]]:
    """Every object of FLEET as stored, by kind/name."""
    return {
        f"{m['kind']}/{m['metadata']['name']}": await kube.get_raw(
            m["apiVersion"], m["kind"], m["metadata"]["name"], m["metadata"]["namespace"]
        )
        for m in FLEET
    }


async def assert_kept(kube: Kube, before: dict[str, dict[str, Any]]) -> None:
    """Every object of the fleet is the same object (uid) with every label, spec and status field as stored before
    (the new schema may add its defaults), and the current models read it."""
    after = await fleet(kube)
    for name, stored in before.items():
        now = after[name]
        assert now["metadata"]["uid"] == stored["metadata"]["uid"], f"{name} was recreated"
        for part in ("spec", "status"):
            assert difference(now.get(part), stored.get(part)) is None, name
        assert now["metadata"].get("labels") == stored["metadata"].get("labels"), name
    for model in (AgenticTask, FleetNode, TaskSchedule, TaskQueue, Agent):
        assert (await kube.list(model)).items, model.__name__
