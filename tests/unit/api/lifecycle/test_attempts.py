"""Attempts: a claim begins one, every move that ends a Running task ends it; what each keeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from foreman.api.lifecycle import status
from foreman.api.models import transcript
from foreman.api.models.envelope import MAX_ATTEMPTS_KEPT, ResultEnvelope, Usage
from foreman.api.models.tasks import AgenticTask
from foreman.worker.rules import Outcome, finished
from tests.factories import T0, task

LATER = T0 + timedelta(minutes=5)
USED = Usage(prompt_tokens=70, completion_tokens=7, total_tokens=77, turns=1)


def claimed_task(history: list[dict[str, Any]] | None = None, **spec: Any) -> AgenticTask:
    """A task as its worker's claim wrote it (the claim's patch applied)."""
    scheduled = task("t", phase="Scheduled", assignedNode="box", attemptHistory=history or [], **spec)
    patch = status.claimed(scheduled, T0, "box/1")
    body = {**scheduled.status.to_wire(), **patch}
    return scheduled.model_copy(update={"status": type(scheduled.status).model_validate(body)})


def test_a_claim_begins_the_next_attempt_on_its_node() -> None:
    first = claimed_task()
    [attempt] = first.status.attempt_history
    assert (attempt.number, attempt.node, attempt.started_at, attempt.finished_at) == (1, "box", T0, None)
    again = claimed_task([{"number": 1, "node": "old", "outcome": "Timeout", "finishedAt": "2026-01-01T00:00:00Z"}])
    assert [a.number for a in again.status.attempt_history] == [1, 2]


def test_the_history_keeps_the_latest_attempts_within_its_cap() -> None:
    history = [{"number": n, "outcome": "Timeout", "finishedAt": "2026-01-01T00:00:00Z"} for n in range(1, 129)]
    claimed = claimed_task(history)
    assert len(claimed.status.attempt_history) == MAX_ATTEMPTS_KEPT
    assert claimed.status.attempt_history[-1].number == 129


def test_a_timed_out_attempt_keeps_the_usage_its_executor_reported_and_the_retry_begins_afresh() -> None:
    running = claimed_task(retries=1)
    outcome = Outcome(reason="Timeout", message="too slow", usage=USED, transcript_ref="t-transcript")
    patch = finished(running, outcome, LATER, backoff=5, backoff_max=300)
    assert patch["phase"] == "Pending"
    [ended] = patch["attemptHistory"]
    assert ended["outcome"] == "Timeout"
    assert ended["usage"] == USED.to_wire()
    assert ended["transcriptRef"] == "t-transcript"
    assert ended["finishedAt"] == "2026-01-01T00:05:00Z"


def test_the_last_attempt_is_in_the_result_envelope_and_its_usage_in_status() -> None:
    running = claimed_task()
    cancelled = finished(running, Outcome(reason="Cancelled", usage=USED), LATER, backoff=5, backoff_max=300)
    assert cancelled["usage"] == USED.to_wire()
    assert cancelled["result"]["attempts"] == cancelled["attemptHistory"]
    assert cancelled["attemptHistory"][0]["outcome"] == "Cancelled"
    envelope = ResultEnvelope(kind="verify", verdict="GO", extra={"usage": USED.to_wire()})
    done = finished(running, Outcome(envelope=envelope), LATER, backoff=5, backoff_max=300)
    [attempt] = done["result"]["attempts"]
    assert (attempt["outcome"], attempt["verdict"], attempt["usage"]) == ("Completed", "GO", USED.to_wire())


def test_the_controller_ends_an_attempt_whose_node_was_lost_and_leaves_a_never_claimed_task_alone() -> None:
    lost = status.requeued(claimed_task(), LATER, "NodeLost", "silent", count_attempt=True)
    assert lost["attemptHistory"][0]["outcome"] == "NodeLost"
    assert "usage" not in lost["attemptHistory"][0]
    pending = task("t", phase="Scheduled", assignedNode="box")
    assert "attemptHistory" not in status.requeued(pending, LATER, "ClaimExpired", "x", count_attempt=True)
    assert "attemptHistory" not in status.failed(task("t"), LATER, "Cancelled", "x")


def test_each_attempt_has_its_own_transcript_configmap() -> None:
    assert transcript.configmap_name("fix") == "fix-transcript"
    assert transcript.configmap_name("fix", 2) == "fix-transcript-2"
    assert len(transcript.configmap_name("x" * 253, 100)) == 253
    history = [{"number": 1, "finishedAt": "2026-01-01T00:00:00Z"}, {"number": 2}]
    published = task("fix", phase="Running", transcriptRef="fix-transcript-2", attemptHistory=history)
    assert transcript.configmap_names(published) == ["fix-transcript", "fix-transcript-2"]
    assert transcript.configmap_names(task("fix", attemptHistory=history)) == []  # never published one
    body = transcript.configmap(published, "{}", 2)
    assert body["metadata"]["name"] == "fix-transcript-2"
