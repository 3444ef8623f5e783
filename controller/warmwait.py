"""Delay scheduling for policy `warm` (Zaharia et al., EuroSys 2010, with a loaded model for the data's locality): a
task whose model is loaded on a node that is busy waits up to its `coldStartDelay` for that node to free a slot,
before it starts cold where the model must first be loaded.

Said on read, never written (as a busy slot is): the wait is seconds long, and a condition write per waiting task
would cost the apiserver more than the wait saves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from foreman.api.lifecycle import reasons
from foreman.api.models.tasks import AgenticTask
from foreman.controller.cache import Cache
from foreman.controller.match import Need, Placer


def cold_start_delay(cache: Cache, task: AgenticTask, default: float) -> float:
    """Seconds the task may wait for a warm node: its Agent's coldStartDelay, else its TaskQueue's, else `default`."""
    agent = cache.agent_of(task)
    if agent is not None and agent.cold_start_delay is not None:
        return agent.cold_start_delay
    queue = cache.queues.get(cache.queue_of(task))
    if queue is not None and queue.spec.cold_start_delay is not None:
        return queue.spec.cold_start_delay
    return default


def waiting_since(task: AgenticTask) -> datetime:
    """When the task became placeable: its creation, or the end of its retry backoff."""
    created = task.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC)
    retry = task.status.not_before
    return max(created, retry) if retry is not None else created


def warm_deadline(need: Need, task: AgenticTask, placer: Placer, now: datetime, delay: float) -> datetime | None:
    """Until when the task waits for a warm node (None: it does not wait; it goes where the policy says now)."""
    if placer.policy != "warm" or delay <= 0:
        return None
    deadline = waiting_since(task) + timedelta(seconds=delay)
    return deadline if now < deadline and placer.warm_somewhere(need) else None


def waiting_message(need: Need, delay: float) -> tuple[str, str]:
    return reasons.WAITING_FOR_WARM_NODE, f"waiting up to {delay:g} s for a node with {need.model} loaded"
