"""Which deliveries are due, and what the outcome of a batch makes of `status.deliveries`: pure functions of the task,
its Agent, the time and the retry policy.

At least once with one status write per delivered task: nothing is written before a send. A delivery with no record,
or a Pending one whose backoff ran out, is due; the outcomes of one task's sends are written together, once. A
notifier killed after sending and before that write finds the delivery still due after its restart and sends it
again with the same id (the idempotency key), which a receiver that dedups drops; one that wrote Delivered never
sends it again. Writing Pending before each send would say nothing more (absent already means due) and double the
writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from foreman.api.lifecycle.deliveries import firing
from foreman.api.models.agents import AgentSpec
from foreman.api.models.notify import Delivery, NotifyEntry, delivery_id
from foreman.api.models.tasks import AgenticTask
from foreman.api.runtime.backoff import backoff_delay

ERROR_LENGTH = 1024


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    """Tries of one delivery before it is Failed (with the receiver's last answer)."""
    base: float = 2.0
    """Seconds before the second try; doubled for each further one."""
    cap: float = 300.0
    """The longest wait between two tries."""

    def delay(self, delivery: str, attempt: int) -> float:
        """Seconds after try `attempt` (1-based) before the next: exponential, with jitter in [1/2, 1) of it, drawn
        from the delivery's id so that the same try waits the same (pure), and deliveries failing together (one
        receiver down) spread out."""
        spread = int(hashlib.sha256(f"{delivery}/{attempt}".encode()).hexdigest()[:8], 16) / 2**32
        return backoff_delay(attempt - 1, self.base, self.cap) * (0.5 + spread / 2)


@dataclass(frozen=True)
class Send:
    """One delivery to try now."""

    index: int
    entry: NotifyEntry
    id: str
    attempt: int
    """This try, 1-based."""


@dataclass(frozen=True)
class Plan:
    sends: tuple[Send, ...]
    wake_at: datetime | None
    """The earliest backoff of a Pending delivery not due yet: look at the task again then."""


@dataclass(frozen=True)
class Outcome:
    """What one try came to: Delivered, `retry` (a 5xx, 408, 429, a timeout, a lost connection) or `failed` (any
    other answer, or nothing to send with: a missing Secret or key, an unknown Apprise URL)."""

    result: Literal["delivered", "retry", "failed"]
    detail: str | None = None


def plan(task: AgenticTask, agent: AgentSpec | None, now: datetime) -> Plan:
    """The deliveries of a finished task due at `now`."""
    recorded = {d.index: d for d in task.status.deliveries}
    uid = task.metadata.uid or task.name
    sends: list[Send] = []
    wake_at: datetime | None = None
    for index, entry in firing(task, agent):
        known = recorded.get(index)
        if known is not None and known.state != "Pending":
            continue
        if known is not None and known.next_attempt_at is not None and known.next_attempt_at > now:
            wake_at = known.next_attempt_at if wake_at is None else min(wake_at, known.next_attempt_at)
            continue
        attempt = (known.attempts if known is not None else 0) + 1
        sends.append(Send(index, entry, delivery_id(uid, task.status.attempts, index), attempt))
    return Plan(tuple(sends), wake_at)


def record(
    deliveries: Iterable[Delivery], outcomes: Iterable[tuple[Send, Outcome]], now: datetime, policy: RetryPolicy
) -> list[Delivery]:
    """`status.deliveries` after a batch: each send's new record replaces its index's, in index order."""
    by_index = {d.index: d for d in deliveries}
    for send, outcome in outcomes:
        by_index[send.index] = _after(by_index.get(send.index), send, outcome, now, policy)
    return [by_index[i] for i in sorted(by_index)]


def _after(known: Delivery | None, send: Send, outcome: Outcome, now: datetime, policy: RetryPolicy) -> Delivery:
    detail = outcome.detail[:ERROR_LENGTH] if outcome.detail else None
    base = Delivery(
        index=send.index,
        sink=send.entry.sink_type,
        state="Pending",
        id=send.id,
        attempts=send.attempt,
        last_error=detail or (known.last_error if known is not None else None),
    )
    if outcome.result == "delivered":
        return base.model_copy(update={"state": "Delivered", "delivered_at": now})
    if outcome.result == "failed" or send.attempt >= policy.max_attempts:
        return base.model_copy(update={"state": "Failed"})
    wait = timedelta(seconds=policy.delay(send.id, send.attempt))
    return base.model_copy(update={"next_attempt_at": now + wait})
