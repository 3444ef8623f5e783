"""Which deliveries are due and what a batch's outcomes make of status.deliveries: pure, on plain tasks."""

from datetime import timedelta
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from foreman.api.lifecycle.deliveries import outstanding
from foreman.api.models.agents import AgentSpec
from foreman.api.models.notify import Delivery
from foreman.notifier.due import Outcome, RetryPolicy, plan, record
from tests.factories import T0, task

HOOK = {"url": "https://example.com/hook", "signingSecretRef": {"name": "hook", "key": "secret"}}
LOG: dict[str, Any] = {"log": {}}
POLICY = RetryPolicy(max_attempts=3, base=2, cap=60)


def finished(phase: str = "Succeeded", verdict: str | None = "GO", **spec: Any) -> Any:
    status = {"verdict": verdict} if verdict else {}
    return task("t", phase=phase, finishedAt=T0, attempts=2, **status, **spec)


def test_a_task_notifies_when_its_phase_or_verdict_is_listed() -> None:
    notify = [{"on": ["Failed"], **LOG}, {"on": ["GATE-FAIL"], **LOG}, {"on": ["Succeeded"], **LOG}, LOG]
    sends = plan(finished("Failed", "GATE-FAIL", notify=notify), None, T0).sends
    assert [s.index for s in sends] == [0, 1, 3]  # the default `on` is every finished task
    assert [s.id for s in sends] == ["uid-t-2-0", "uid-t-2-1", "uid-t-2-3"]  # uid, the task's attempt, the index
    assert all(s.attempt == 1 for s in sends)


def test_nothing_is_due_before_the_task_finished() -> None:
    assert plan(task("t", phase="Running", notify=[LOG]), None, T0).sends == ()


def test_the_agents_list_is_the_default_not_a_merge() -> None:
    agent = AgentSpec.model_validate({"notify": [LOG, LOG]})
    assert len(plan(finished(agentRef="a"), agent, T0).sends) == 2
    assert len(plan(finished(agentRef="a", notify=[{"webhook": HOOK}]), agent, T0).sends) == 1


def test_a_delivered_or_failed_one_is_never_sent_again_and_a_pending_one_waits_its_backoff() -> None:
    deliveries = [
        {"index": 0, "sink": "log", "state": "Delivered", "id": "uid-t-2-0", "attempts": 1},
        {"index": 1, "sink": "log", "state": "Failed", "id": "uid-t-2-1", "attempts": 1},
        {"index": 2, "sink": "log", "state": "Pending", "id": "uid-t-2-2", "attempts": 2,
         "nextAttemptAt": T0 + timedelta(seconds=5)},
    ]  # fmt: skip
    t = finished(notify=[LOG, LOG, LOG], deliveries=deliveries)
    early = plan(t, None, T0)
    assert (early.sends, early.wake_at) == ((), T0 + timedelta(seconds=5))
    late = plan(t, None, T0 + timedelta(seconds=5))
    assert [(s.index, s.attempt, s.id) for s in late.sends] == [(2, 3, "uid-t-2-2")]  # the same id on every try
    assert outstanding(t, None) == [2]


def test_outcomes_become_one_list_in_index_order() -> None:
    t = finished(notify=[LOG, {"webhook": HOOK}, LOG])
    sends = plan(t, None, T0).sends
    outcomes = [Outcome("retry", "HTTP 500: down"), Outcome("delivered"), Outcome("failed", "HTTP 404: gone")]
    after = record(t.status.deliveries, zip(reversed(sends), outcomes, strict=True), T0, POLICY)
    assert [(d.index, d.sink, d.state, d.attempts, d.last_error) for d in after] == [
        (0, "log", "Failed", 1, "HTTP 404: gone"),
        (1, "webhook", "Delivered", 1, None),
        (2, "log", "Pending", 1, "HTTP 500: down"),
    ]
    assert after[1].delivered_at == T0
    assert T0 < (after[2].next_attempt_at or T0) <= T0 + timedelta(seconds=2)


def test_the_last_allowed_try_that_fails_ends_failed_with_the_receivers_answer() -> None:
    pending = Delivery(index=0, sink="log", state="Pending", id="uid-t-2-0", attempts=2, last_error="HTTP 503: busy")
    t = finished(notify=[LOG], deliveries=[pending.to_wire()])
    (send,) = plan(t, None, T0).sends
    assert send.attempt == 3
    (after,) = record(t.status.deliveries, [(send, Outcome("retry", "HTTP 502: bad gateway"))], T0, POLICY)
    assert (after.state, after.attempts, after.last_error) == ("Failed", 3, "HTTP 502: bad gateway")


@given(st.integers(min_value=1, max_value=40), st.text(min_size=1, max_size=40))
def test_backoff_grows_with_jitter_and_stays_under_the_cap(attempt: int, id: str) -> None:
    delay = POLICY.delay(id, attempt)
    full = min(POLICY.cap, POLICY.base * 2 ** (attempt - 1))
    assert full / 2 <= delay < full
    assert delay == POLICY.delay(id, attempt)  # the same try waits the same: the plan is a pure function


def test_a_bare_yaml_on_is_read_as_on_not_dropped() -> None:
    """`on:` unquoted is the boolean true to PyYAML: dropped as an unknown field, the entry would fire on everything."""
    document = yaml.safe_load("notify:\n- on: [Failed]\n  log: {}\n")
    t = finished(notify=document["notify"])
    assert t.spec.notify[0].on == ["Failed"]
    assert plan(t, None, T0).sends == ()
