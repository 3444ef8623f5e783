"""Deliveries through the failures receivers and notifiers have: an answer of 500 then 200, an answer slower than the
timeout, a receiver down for a while, and a notifier killed after sending and before recording. Every event is
delivered, and what the receiver gets twice carries the same idempotency key (counted at the receiver)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.models.tasks import AgenticTask
from foreman.controller.leader import LeaderElector, LeaseConfig
from foreman.notifier.loop import Notifier
from tests.clock import Clock
from tests.conditions import until as until_true
from tests.integration.helpers import until
from tests.integration.notify import finished_task, receiving, running_notifier, secret, webhook
from tests.servers.receiver import Answer


class LosesItsWrites:
    """The real client, but no status write ever returns: a notifier stopped while waiting on it was killed after
    sending and before recording."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self.writing = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kube, name)

    async def patch_status(self, *_: Any, **__: Any) -> Any:
        self.writing.set()
        await asyncio.Event().wait()


def state_of(kube: Kube, namespace: str, name: str, state: str, attempts: int) -> Any:
    async def fetch() -> AgenticTask:
        return await kube.get(AgenticTask, name, namespace)

    def reached(task: AgenticTask) -> bool:
        return any(d.state == state and d.attempts == attempts for d in task.status.deliveries)

    return until(fetch, reached)


def later(notifier: Notifier, clock: Clock) -> None:
    """Past any backoff (the policy's cap), on the notifier's clock."""
    clock.advance(notifier.config.retry.cap + 1)
    notifier.queue.poke()


async def test_every_event_is_delivered_through_receiver_faults_and_a_killed_notifier(
    kube: Kube, namespace: str
) -> None:
    clock = Clock()
    async with receiving() as receiver:
        await secret(kube, namespace, "hook", {"signing": receiver.signing_secret})
        hook = [webhook(receiver.url)]
        async with running_notifier(kube, namespace, clock=clock, timeout=0.5) as notifier:
            receiver.script.append(Answer(500))
            await finished_task(kube, namespace, "flaky", hook)
            pending = await state_of(kube, namespace, "flaky", "Pending", 1)
            assert pending.status.deliveries[0].last_error == "HTTP 500: scripted 500"
            later(notifier, clock)
            await state_of(kube, namespace, "flaky", "Delivered", 2)

            receiver.script.append(Answer(200, delay=1.5))
            await finished_task(kube, namespace, "slow", hook)
            pending = await state_of(kube, namespace, "slow", "Pending", 1)
            assert pending.status.deliveries[0].last_error == "no answer within 0.5 s"
            later(notifier, clock)
            await state_of(kube, namespace, "slow", "Delivered", 2)

            await receiver.stop()
            await finished_task(kube, namespace, "down", hook)
            await state_of(kube, namespace, "down", "Pending", 1)
            later(notifier, clock)
            pending = await state_of(kube, namespace, "down", "Pending", 2)  # still down
            assert "ClientConnectorError" in (pending.status.deliveries[0].last_error or "")
            await receiver.start()
            later(notifier, clock)
            await state_of(kube, namespace, "down", "Delivered", 3)

        losing = LosesItsWrites(kube)
        async with running_notifier(losing, namespace, clock=clock):  # type: ignore[arg-type]
            await finished_task(kube, namespace, "killed", hook)
            await asyncio.wait_for(losing.writing.wait(), 10)  # sent; the notifier dies before it records
        killed = await kube.get(AgenticTask, "killed", namespace)
        assert killed.status.deliveries == []
        async with running_notifier(kube, namespace, clock=clock):
            await state_of(kube, namespace, "killed", "Delivered", 1)
        async with running_notifier(kube, namespace, clock=clock) as notifier:
            await notifier.deliver((namespace, "killed"))  # recorded Delivered: nothing due, nothing sent
            assert sum(sample.value for sample in notifier.metrics.deliveries.collect()[0].samples) == 0

        tasks = {name: await kube.get(AgenticTask, name, namespace) for name in ("flaky", "slow", "down", "killed")}
        ids = {name: f"{task.metadata.uid}-0-0" for name, task in tasks.items()}
        assert {r.id for r in receiver.delivered("/hook")} == set(ids.values())  # every event delivered
        got = Counter(r.id for r in receiver.received)
        assert set(got) == set(ids.values())  # duplicates only with the same id
        assert got[ids["flaky"]] == 2  # the 500, then the 200
        assert got[ids["killed"]] == 2  # sent before the kill, again after the restart
        assert got[ids["down"]] == 1  # nothing reached it while it was down
        assert all(r.answered != 401 for r in receiver.received)  # each one signed


async def test_two_notifiers_one_lease_each_event_delivered_and_the_standby_takes_over(
    kube: Kube, namespace: str
) -> None:
    """HA as the Deployment runs it: two replicas, the controller's elector; the leader is stopped mid-stream and the
    standby delivers the rest. Nothing is lost; a duplicate, if any, carries its delivery's id."""

    def elect(identity: str) -> Any:
        config = LeaseConfig(name="notifier", namespace=namespace, identity=identity, duration=2, retry_period=0.1)
        return lambda changed: LeaderElector(kube, config, on_change=changed)

    async with receiving() as receiver:
        await secret(kube, namespace, "hook", {"signing": receiver.signing_secret})
        leading = running_notifier(kube, namespace, elect=elect("a"))
        leader = await leading.__aenter__()
        stopped = False
        try:
            await until_true(lambda: leader.elector is not None and leader.elector.is_leader)
            async with running_notifier(kube, namespace, elect=elect("b")) as standby:
                for i in range(5):
                    await finished_task(kube, namespace, f"before-{i}", [webhook(receiver.url)])
                for i in range(5):
                    await state_of(kube, namespace, f"before-{i}", "Delivered", 1)
                assert standby.metrics.status_writes._value.get() == 0  # the standby delivered nothing
                stopped = True
                await leading.__aexit__(None, None, None)  # the leader goes, releasing the Lease
                for i in range(5):
                    await finished_task(kube, namespace, f"after-{i}", [webhook(receiver.url)])
                for i in range(5):
                    await state_of(kube, namespace, f"after-{i}", "Delivered", 1)
                assert standby.metrics.status_writes._value.get() == 5
        finally:
            if not stopped:
                await leading.__aexit__(None, None, None)
        listing = await kube.list(AgenticTask, namespace=namespace)
    ids = {f"{task.metadata.uid}-0-0" for task in listing.items}
    got = Counter(r.id for r in receiver.delivered("/hook"))
    assert set(got) == ids  # each of the ten delivered, and nothing else
    assert all(count == 1 for count in got.values())  # one leader at a time: no duplicates in steady state
