"""The in-memory apiserver the loops' unit tests run on (tests/fakekube.py) answers as the real one: one scenario of
what Foreman sends, through the real `Kube`, told the same by both (resourceVersions and uids aside, which each server
makes its own way, and on an older release than the fake's, the wording of errors)."""

import json
import re
from typing import Any

from foreman.api.http import requests
from foreman.api.http.client import Kube
from foreman.api.http.errors import ApiError
from foreman.api.http.features import SELECTABLE_FIELDS, Release
from foreman.api.http.requests import Request
from foreman.api.models.tasks import AgenticTask
from tests.clusters import Cluster
from tests.fakekube import ONE_TRY, FakeApiserver, kube_over, merged


async def told(kube: Kube, namespace: str, release: Release) -> list[Any]:
    """What `kube` answers to the scenario; its messages only where the fake answers as the same release."""
    said: list[Any] = []

    async def refused(call: Any) -> None:
        try:
            await call
        except ApiError as error:
            message = re.sub(r"\((\d+|[0-9a-f-]{36})\)", "(N)", error.message)
            said.append((type(error).__name__, error.reason, message if release == FakeApiserver().release else None))
        else:
            said.append("accepted")

    collection = requests.resource_path(AgenticTask, namespace=namespace)
    stale = merged(AgenticTask.new("stale", namespace=namespace).to_wire(), {"metadata": {"resourceVersion": "1"}})
    await refused(kube._send(Request("POST", collection, body=stale)))
    running = merged(AgenticTask.new("t", namespace=namespace).to_wire(), {"status": {"phase": "Running"}})
    made = AgenticTask.model_validate(await kube._send(Request("POST", collection, body=running)))
    said.append(("created", made.phase, made.metadata.generation, made.metadata.uid is not None))
    named = await kube.create(AgenticTask.new(namespace=namespace, generate_name="gen-"))
    said.append(("generated", re.fullmatch(r"gen-[a-z0-9]{5}", named.name) is not None))
    await refused(kube.create(AgenticTask.new("t", namespace=namespace)))

    labelled = await kube.patch(AgenticTask, "t", {"metadata": {"labels": {"x": "1"}}}, namespace=namespace)
    again = await kube.patch(AgenticTask, "t", {"metadata": {"labels": {"x": "1"}}}, namespace=namespace)
    said.append(("unchanged", again.metadata.resource_version == labelled.metadata.resource_version))
    spec = await kube.patch(
        AgenticTask, "t", {"spec": {"priority": 3}, "status": {"phase": "Failed"}}, namespace=namespace
    )
    said.append(("spec", spec.metadata.generation, spec.phase))
    status = await kube.patch_status(
        AgenticTask, "t", {"phase": "Scheduled"}, namespace=namespace, resource_version=spec.metadata.resource_version
    )
    said.append(("status", status.metadata.generation, status.phase))
    await refused(
        kube.patch_status(
            AgenticTask, "t", {"phase": "Running"}, namespace=namespace, resource_version=spec.metadata.resource_version
        )
    )

    fields = "status.phase=Scheduled" if release >= SELECTABLE_FIELDS else "metadata.name=t"
    listed = await kube.list(AgenticTask, namespace=namespace, label_selector="x=1", field_selector=fields)
    said.append(("selected", [task.name for task in listed.items]))
    left = await kube.patch(AgenticTask, "t", {"metadata": {"labels": {"x": "2"}}}, namespace=namespace)
    watch = requests.watch(
        AgenticTask, resource_version=listed.resource_version, timeout_seconds=30, namespace=namespace,
        label_selector="x=1",
    )  # fmt: skip
    lines = kube._stream(watch, 30)
    event = json.loads(await anext(lines))
    await lines.aclose()  # type: ignore[attr-defined]  # NB: an async generator
    meta = event["object"]["metadata"]
    said.append(
        ("left the selection", event["type"], meta["labels"], meta["resourceVersion"] == left.metadata.resource_version)
    )

    await refused(kube.delete(AgenticTask, "t", namespace, uid="not-its-uid"))
    await refused(kube.delete(AgenticTask, "t", namespace, resource_version=spec.metadata.resource_version))
    await kube.delete(AgenticTask, "t", namespace)
    await refused(kube.get(AgenticTask, "t", namespace))

    transcript = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace}}
    await kube.apply({**transcript, "data": {"a": "1"}})
    applied = await kube.apply({**transcript, "data": {"b": "2"}})
    said.append(("applied", applied["data"]))
    return said


async def test_the_fake_tells_what_the_real_apiserver_tells(cluster: Cluster, namespace: str) -> None:
    async with await Kube.connect(str(cluster.kubeconfig()), retry=ONE_TRY) as real:
        release = await real.server_version()
        assert await told(kube_over(FakeApiserver()), namespace, release) == await told(real, namespace, release)
