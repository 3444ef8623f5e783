"""Outcome metrics: which change of a task counts as a finish, once, and what is counted."""

from datetime import timedelta

import pytest

from foreman.api.lifecycle import status
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.tasks import AgenticTask
from foreman.controller.cache import Cache
from foreman.controller.metrics import ControllerMetrics
from foreman.controller.outcomes import Outcome, outcome
from tests.factories import T0, moved, task

SINCE = T0
USAGE = {"usage": {"promptTokens": 1200, "completionTokens": 300, "totalTokens": 1500, "turns": 3}}


def lifecycle(*, end: str = "succeeded", finished_after: timedelta = timedelta(minutes=5)) -> list[AgenticTask]:
    """Pending, Scheduled (10 s after creation), Running, then finished."""
    created = task("t", kind="review")
    placed = moved(created, status.placed(created, "n1", T0 + timedelta(seconds=10)), 2)
    running = moved(placed, status.claimed(placed, T0 + timedelta(seconds=11), "n1/w"), 3)
    at = T0 + finished_after
    if end == "succeeded":
        envelope = ResultEnvelope(kind="review", verdict="NO-GO", summary="two findings")
        done = moved(running, status.succeeded(running, at, envelope, USAGE), 4)
    else:
        done = moved(running, status.failed(running, at, "Timeout", "no answer"), 4)
    return [created, placed, running, done]


def test_a_success_counts_its_kind_verdict_times_and_tokens() -> None:
    *_, running, done = lifecycle()
    assert outcome(running, done, since=SINCE, queue="default") == Outcome(
        namespace="ns", queue="default", kind="review", verdict="NO-GO", outcome="Succeeded",
        duration=300.0, queue_wait=10.0, prompt_tokens=1200, completion_tokens=300,
    )  # fmt: skip


def test_a_failure_counts_its_reason_as_the_outcome() -> None:
    *_, running, done = lifecycle(end="failed")
    counted = outcome(running, done, since=SINCE, queue="default")
    assert counted is not None
    assert (counted.verdict, counted.outcome, counted.prompt_tokens) == ("INCOMPLETE", "Timeout", 0)


def test_a_task_that_never_held_a_node_has_no_queue_wait() -> None:
    pending = task("t")
    cancelled = moved(pending, status.failed(pending, T0 + timedelta(seconds=3), "Cancelled", "cancelled"), 2)
    counted = outcome(pending, cancelled, since=SINCE, queue="default")
    assert counted is not None
    assert (counted.outcome, counted.duration, counted.queue_wait) == ("Cancelled", 3.0, None)


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (0, 1, "placed: not finished"),
        (3, 3, "finished before and after: a later write of a finished task (a label, a relist)"),
    ],
)
def test_only_a_finish_counts(old: int, new: int, why: str) -> None:
    steps = lifecycle()
    assert outcome(steps[old], steps[new], since=SINCE, queue="default") is None, why


def test_a_finish_first_seen_counts_once_unless_it_came_before_the_controller_started() -> None:
    """A relist after a watch gap shows a task finished meanwhile for the first time: it counts. A restart lists
    every task finished before it: they were counted by the replica that saw them finish."""
    done = lifecycle()[-1]
    assert outcome(None, done, since=SINCE, queue="default") is not None
    assert outcome(None, done, since=T0 + timedelta(hours=1), queue="default") is None


def test_the_cache_tells_of_each_finish_once_before_trimming_the_task() -> None:
    seen: list[tuple[AgenticTask | None, AgenticTask]] = []
    cache = Cache(on_finished=lambda old, new: seen.append((old, new)))
    steps = lifecycle()
    for step in steps:
        cache.upsert_task(step)
    cache.replace_tasks([steps[-1]], "ns")  # a relist: same resourceVersion, nothing new
    relabelled = steps[-1].model_copy(
        update={"metadata": steps[-1].metadata.model_copy(update={"resource_version": "5"})}
    )
    cache.upsert_task(relabelled)
    assert [(old.phase if old else None, new.phase) for old, new in seen] == [("Running", "Succeeded")]
    assert seen[0][1].status.usage is not None  # the whole task, usage and all
    kept = cache.task(("ns", "t"))
    assert kept is not None
    assert kept.status.usage is None
    assert kept.status.verdict == "NO-GO"


def test_recorded_outcomes_land_in_the_registry() -> None:
    metrics = ControllerMetrics()
    *_, running, done = lifecycle()
    counted = outcome(running, done, since=SINCE, queue="default")
    assert counted is not None
    metrics.record(counted)
    sample = metrics.registry.get_sample_value
    labels = {"namespace": "ns", "queue": "default", "kind": "review", "verdict": "NO-GO", "outcome": "Succeeded"}
    assert sample("foreman_task_completed_total", labels) == 1
    assert sample("foreman_task_duration_seconds_sum", {"kind": "review"}) == 300
    assert sample("foreman_task_queue_wait_seconds_count", {"queue": "default"}) == 1
    tokens = {"namespace": "ns", "queue": "default", "kind": "review"}
    assert sample("foreman_task_tokens_total", {**tokens, "direction": "prompt"}) == 1200
    assert sample("foreman_task_tokens_total", {**tokens, "direction": "completion"}) == 300
