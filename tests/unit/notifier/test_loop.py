"""The notifier's loop through the real client over the in-memory apiserver: only a leader delivers, and a status
write that fails is tried again (sending again, with the same id: at least once). The real API and real receivers:
tests/integration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from foreman.api.http.errors import ServerError
from foreman.api.models.tasks import AgenticTask
from foreman.notifier.loop import Notifier
from foreman.notifier.secrets import SecretReader
from foreman.notifier.sinks import Sender
from tests.conditions import until
from tests.fakekube import FakeApiserver, kube_over


class Elector:
    """Leadership as the test says (the real one: foreman.controller.leader, tested there)."""

    def __init__(self) -> None:
        self.is_leader = False
        self.trouble: str | None = None
        self.changed: Any = None

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()

    def lead(self) -> None:
        self.is_leader = True
        self.changed(True)


@asynccontextmanager
async def running(api: FakeApiserver, elector: Elector | None = None) -> AsyncIterator[Notifier]:
    def elect(changed: Any) -> Elector:
        assert elector is not None
        elector.changed = changed
        return elector

    kube = kube_over(api)
    async with aiohttp.ClientSession() as session:
        notifier = Notifier(kube, Sender(session, SecretReader(kube)), elect=elect if elector else None)
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.run(stop))
        try:
            await until(notifier.is_ready)
            yield notifier
        finally:
            stop.set()
            await task


async def finished(api: FakeApiserver, name: str) -> None:
    kube = kube_over(api)
    body = {"metadata": {"name": name, "namespace": "ns"}, "spec": {"kind": "verify", "notify": [{"log": {}}]}}
    await kube.create(AgenticTask.model_validate(body))
    await kube.patch_status(AgenticTask, name, {"phase": "Succeeded", "verdict": "GO"}, namespace="ns")
    api.status_writes.clear()


def sent(notifier: Notifier) -> float:
    return sum(s.value for s in notifier.metrics.deliveries.collect()[0].samples if s.name.endswith("_total"))


async def test_only_the_leader_delivers_and_it_picks_up_what_was_left() -> None:
    api = FakeApiserver()
    await finished(api, "done")
    elector = Elector()
    async with running(api, elector) as notifier:
        assert ("ns", "done") in notifier.tasks  # seen, and waiting for leadership
        assert sent(notifier) == 0
        elector.lead()
        await until(lambda: len(api.status_writes) == 1)
    ((name, body),) = api.status_writes
    assert (name, [d["state"] for d in body["deliveries"]]) == ("done", ["Delivered"])
    assert sent(notifier) == 1


async def test_a_failed_status_write_is_tried_again_and_the_delivery_sent_again_with_the_same_id() -> None:
    api = FakeApiserver()
    await finished(api, "flaky")
    api.refuse["flaky"] = [ServerError("etcd timeout", status=500)]
    async with running(api) as notifier:
        await until(lambda: len(api.status_writes) == 2)
    first, second = ([(d["id"], d["attempts"]) for d in body["deliveries"]] for _, body in api.status_writes)
    assert first == second  # the same delivery (its id, attempt 1), recorded on the second write
    assert sent(notifier) == 2
    task = await kube_over(api).get(AgenticTask, "flaky", "ns")
    assert [d.state for d in task.status.deliveries] == ["Delivered"]
