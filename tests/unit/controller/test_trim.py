"""What the cache keeps of a task: all a decision reads, and for a finished task nothing more; of a node, all of it
in shared field sets."""

from datetime import timedelta

from foreman.api.lifecycle import status
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.schedules import SCHEDULE_LABEL
from foreman.api.models.tasks import AgenticTask
from foreman.controller.cache import Cache
from foreman.controller.rules import Fail, Placeable, decide
from foreman.controller.trim import EMPTY_PAYLOAD, for_decisions
from tests.factories import T0, moved, node, task


def finished(name: str, *, failed: bool = False, labels: dict[str, str] | None = None) -> AgenticTask:
    created = task(name, payload={"prompt": "work"}, timeoutSeconds=60)
    created = created.model_copy(update={"metadata": created.metadata.model_copy(
        update={"labels": labels or {}, "annotations": {"last-applied": "{...}"}})})  # fmt: skip
    placed = moved(created, {**status.placed(created, "n1", T0), "transcriptRef": f"{name}-transcript"}, 2)
    running = moved(placed, status.claimed(placed, T0, "n1/w"), 3)
    envelope = ResultEnvelope(kind="verify", verdict="GO", summary="fine", extra={"stdoutTail": "x" * 1000})
    end = T0 + timedelta(minutes=1)
    body = status.failed(running, end, "Timeout", "slow") if failed else status.succeeded(running, end, envelope, {})
    return moved(running, body, 4)


def test_a_finished_task_keeps_what_decisions_and_clean_up_read() -> None:
    done = finished("up", failed=True)
    kept = for_decisions(done)
    assert (kept.phase, kept.status.verdict, kept.status.failure_reason) == ("Failed", "INCOMPLETE", "Timeout")
    assert kept.status.finished_at == T0 + timedelta(minutes=1)
    assert kept.status.transcript_ref == "up-transcript"  # clean-up deletes it with the task
    assert (kept.spec.timeout_seconds, kept.metadata.resource_version) == (60, "4")
    assert kept.status.conditions == []
    assert kept.status.result is None
    assert kept.metadata.annotations == {}
    assert kept.spec.payload == EMPTY_PAYLOAD


def test_a_dependant_of_a_trimmed_upstream_is_decided_as_before() -> None:
    cache = Cache()
    cache.upsert_task(finished("ok"))
    cache.upsert_task(finished("bad", failed=True))
    for name in ("after-ok", "after-bad"):
        cache.upsert_task(task(name, dependsOn=[name.removeprefix("after-")]))
    siblings = cache.siblings("ns")
    assert decide(siblings["after-ok"], siblings, T0) == Placeable()
    failed = decide(siblings["after-bad"], siblings, T0)
    assert isinstance(failed, Fail)
    assert failed.message == "upstream bad failed (Timeout)"


def test_a_schedules_task_keeps_its_outcome_for_the_run_history() -> None:
    kept = for_decisions(finished("nightly-1", labels={SCHEDULE_LABEL: "nightly"}))
    assert kept.status.result is not None
    assert kept.status.conditions
    assert kept.spec.payload == EMPTY_PAYLOAD


def test_an_unfinished_task_is_kept_whole_but_its_payload() -> None:
    blocked = {"type": "Blocked", "status": "True", "reason": "WaitingForDependencies", "lastTransitionTime": T0}
    blocked = {"type": "Blocked", "status": "True", "reason": "WaitingForDependencies", "lastTransitionTime": T0}
    pending = task("p", payload={"prompt": "work"}, conditions=[blocked])
    kept = for_decisions(pending)
    assert kept.status == pending.status
    assert kept.metadata == pending.metadata
    assert kept.spec == pending.spec.model_copy(update={"payload": EMPTY_PAYLOAD})


def test_tasks_alike_share_one_set_of_fields_set() -> None:
    one, two = for_decisions(task("a")), for_decisions(task("b"))
    assert one.metadata.model_fields_set is two.metadata.model_fields_set
    assert one.status.model_fields_set == {"phase"}


def test_nodes_alike_share_one_set_of_fields_set_in_the_cache() -> None:
    cache = Cache()
    for name in ("a", "b"):
        cache.upsert_node(node(name), T0)
    one, two = cache.nodes["a"], cache.nodes["b"]
    assert one.status.capability.model_fields_set is two.status.capability.model_fields_set
    assert one.metadata.model_fields_set is two.metadata.model_fields_set
    assert one == node("a")
