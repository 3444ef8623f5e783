from datetime import timedelta

from foreman.api.models.base import ObjectMeta
from foreman.api.models.lease import Lease, LeaseSpec
from foreman.controller.leader import lease_action
from foreman.controller.reclaim import GiveUp, Requeue, heard_recently, node_is_live, node_went_silent, reclaim
from tests.factories import T0, node, task

STALE = timedelta(seconds=90)


def test_liveness_is_judged_by_when_the_controller_heard_the_node() -> None:
    ready = node("n")
    assert node_is_live(ready, T0, T0 + STALE, STALE)
    assert not node_is_live(ready, T0, T0 + STALE + timedelta(seconds=1), STALE)
    assert not node_is_live(node("n", phase="NotReady"), T0, T0, STALE)
    assert not node_is_live(None, T0, T0, STALE)
    assert node_went_silent(ready, T0, T0 + 2 * STALE, STALE)
    assert not node_went_silent(node("n", phase="Draining"), T0, T0 + STALE, STALE)
    assert node_went_silent(node("n", phase="Draining"), T0, T0 + 2 * STALE, STALE)  # killed mid-drain
    assert not node_went_silent(node("n", phase="Stopped"), T0, T0 + 2 * STALE, STALE)  # said it is gone
    assert heard_recently(T0, T0 + STALE, STALE)
    assert not heard_recently(None, T0, STALE)


def test_reclaim_ladder() -> None:
    running = task("t", phase="Running", assignedNode="n", attempts=0)
    assert reclaim(running, node("n"), True, 3) is None
    lost = reclaim(running, None, False, 3)
    assert isinstance(lost, Requeue)
    assert lost.expired
    assert "deleted" in lost.message
    assert isinstance(
        reclaim(task("t", phase="Scheduled", assignedNode="n", attempts=1), node("n", phase="NotReady"), False, 3),
        Requeue,
    )
    final = reclaim(task("t", phase="Running", assignedNode="n", attempts=2), node("n"), False, 3)
    assert isinstance(final, GiveUp)
    assert final.reason == "ClaimExpiryLimitReached"
    assert reclaim(task("t", phase="Pending"), None, False, 3) is None


def test_draining_node_hands_back_unstarted_tasks_without_counting() -> None:
    scheduled = reclaim(task("t", phase="Scheduled", assignedNode="n"), node("n", phase="Draining"), True, 3)
    assert scheduled == Requeue("NodeDraining", "node n is draining; not started there", expired=False)
    assert reclaim(task("t", phase="Running", assignedNode="n"), node("n", phase="Draining"), True, 3) is None
    stopped = reclaim(task("t", phase="Scheduled", assignedNode="n"), node("n", phase="Stopped"), False, 3)
    assert stopped == Requeue("NodeDraining", "node n is stopped; not started there", expired=False)


def test_a_running_task_on_a_silent_draining_or_stopped_node_is_lost() -> None:
    """SIGTERM, then SIGKILL before the drain ended: the node stays Draining and falls silent; the task it ran must
    not read Running for ever. Counted like any lost node."""
    running = task("t", phase="Running", assignedNode="n", attempts=0)
    silent = reclaim(running, node("n", phase="Draining"), False, 3)
    assert silent == Requeue("NodeLost", "node n stopped heartbeating", expired=True)
    gone = reclaim(running, node("n", phase="Stopped"), True, 3)
    assert gone == Requeue("NodeLost", "node n is Stopped", expired=True)


def test_lease_actions() -> None:
    def lease(holder: str | None) -> Lease:
        return Lease(metadata=ObjectMeta(name="l", namespace="ns"), spec=LeaseSpec(holder_identity=holder))

    assert lease_action(None, "me", 0, 15) == "create"
    assert lease_action(lease("me"), "me", 100, 15) == "renew"
    assert lease_action(lease("other"), "me", 5, 15) == "wait"
    assert lease_action(lease("other"), "me", 16, 15) == "take-over"
    assert lease_action(lease(None), "me", 0, 15) == "take-over"
