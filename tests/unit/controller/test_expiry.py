"""A finished task's time to live, as data: the task's field or the controller's default, and the upstream rule."""

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from foreman.api.models.agents import AgentSpec
from foreman.controller.expiry import Expire, ExpireAt, Needed, TimeToLive, expires_at, expiry
from tests.factories import T0, task

HOUR = timedelta(hours=1)
DEFAULTS = TimeToLive(after_success=HOUR, after_failure=24 * HOUR)


def test_each_outcome_has_its_default_and_the_tasks_own_field_wins() -> None:
    assert expires_at(task("ok", phase="Succeeded", finishedAt=T0), DEFAULTS) == T0 + HOUR
    assert expires_at(task("bad", phase="Failed", finishedAt=T0), DEFAULTS) == T0 + 24 * HOUR
    assert expires_at(task("own", phase="Failed", finishedAt=T0, ttlSecondsAfterFinished=0), DEFAULTS) == T0
    own = task("own", phase="Succeeded", finishedAt=T0, ttlSecondsAfterFinished=60)
    assert expires_at(own, TimeToLive()) == T0 + timedelta(seconds=60)  # no defaults: the field alone


def test_kept_without_a_time_to_live_while_unfinished_or_when_it_does_not_say_when_it_finished() -> None:
    assert expires_at(task("ok", phase="Succeeded", finishedAt=T0), TimeToLive()) is None
    assert expires_at(task("run", phase="Running", ttlSecondsAfterFinished=0), DEFAULTS) is None
    assert expires_at(task("by-hand", phase="Succeeded", ttlSecondsAfterFinished=0), DEFAULTS) is None


def test_not_yet_is_a_time_to_look_again_and_then_it_goes() -> None:
    done = task("done", phase="Succeeded", finishedAt=T0)
    assert expiry(done, [], T0 + HOUR - timedelta(seconds=1), DEFAULTS) == ExpireAt(T0 + HOUR)
    assert expiry(done, [], T0 + HOUR, DEFAULTS) == Expire()
    assert expiry(done, [], T0 + HOUR, TimeToLive()) is None


def test_an_upstream_is_kept_while_a_dependant_is_unfinished() -> None:
    up = task("up", phase="Succeeded", finishedAt=T0)
    later = T0 + 2 * HOUR
    waiting = [task("b", phase="Running", dependsOn=["up"]), task("a", dependsOn=["up"])]
    assert expiry(up, [*waiting, task("c", phase="Failed", dependsOn=["up"])], later, DEFAULTS) == Needed(("a", "b"))
    finished = [task("a", phase="Succeeded", dependsOn=["up"]), task("b", phase="Failed", dependsOn=["up"])]
    assert expiry(up, finished, later, DEFAULTS) == Expire()


PHASES = st.sampled_from(["Pending", "Scheduled", "Running", "Succeeded", "Failed"])
SECONDS = st.none() | st.integers(min_value=0, max_value=10**6)


@given(
    phase=PHASES,
    own=SECONDS,
    success=SECONDS,
    failure=SECONDS,
    elapsed=st.integers(min_value=0, max_value=2 * 10**6),
    dependants=st.lists(PHASES, max_size=4),
)
def test_never_deleted_early_unfinished_or_needed_and_always_once_due(
    phase: str, own: int | None, success: int | None, failure: int | None, elapsed: int, dependants: list[str]
) -> None:
    ttl = TimeToLive(*(None if s is None else timedelta(seconds=s) for s in (success, failure)))
    subject = task("t", phase=phase, finishedAt=T0, ttlSecondsAfterFinished=own)
    now = T0 + timedelta(seconds=elapsed)
    decision = expiry(subject, [task(f"d{i}", phase=p) for i, p in enumerate(dependants)], now, ttl)
    keep = own if own is not None else (success if phase == "Succeeded" else failure)
    if phase not in ("Succeeded", "Failed") or keep is None:
        assert decision is None
    elif elapsed < keep:
        assert decision == ExpireAt(T0 + timedelta(seconds=keep))
    elif any(p not in ("Succeeded", "Failed") for p in dependants):
        assert isinstance(decision, Needed)
        assert decision.by
    else:
        assert decision == Expire()


def test_a_task_is_kept_past_its_time_while_a_delivery_is_outstanding_up_to_the_grace() -> None:
    notify = [{"log": {}}, {"on": ["Failed"], "log": {}}]  # the second does not fire for a success
    due = task("due", phase="Succeeded", finishedAt=T0, notify=notify)
    grace = T0 + HOUR + DEFAULTS.delivery_grace
    assert expiry(due, [], T0 + HOUR, DEFAULTS) == ExpireAt(grace)  # none recorded yet
    pending = [{"index": 0, "sink": "log", "state": "Pending", "id": "x", "attempts": 3}]
    assert expiry(task("p", phase="Succeeded", finishedAt=T0, notify=notify, deliveries=pending), [], T0 + HOUR,
                  DEFAULTS) == ExpireAt(grace)  # fmt: skip
    assert expiry(due, [], grace, DEFAULTS) == Expire()  # the grace is a cap
    delivered = [{**pending[0], "state": "Delivered"}]
    done = task("d", phase="Succeeded", finishedAt=T0, notify=notify, deliveries=delivered)
    assert expiry(done, [], T0 + HOUR, DEFAULTS) == Expire()


def test_the_agents_notify_list_keeps_its_tasks_too() -> None:
    agent = AgentSpec.model_validate({"notify": [{"log": {}}]})
    mine = task("mine", phase="Failed", finishedAt=T0, agentRef="reviewer")
    assert expiry(mine, [], T0 + 24 * HOUR, DEFAULTS, agent=agent) == ExpireAt(T0 + 24 * HOUR + HOUR)
    assert expiry(mine, [], T0 + 24 * HOUR, DEFAULTS) == Expire()
