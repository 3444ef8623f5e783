"""A pass with TaskQueues: fair turns between queues, hard caps written once as QueueFull, a named queue that does not
exist, queue status throttled; and `line_up` (what `foreman get tasks` shows) agreeing with the order placed in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from foreman.api.models.base import key_of
from foreman.api.models.queues import TaskQueue
from foreman.api.models.tasks import AgenticTask
from foreman.controller.cache import Cache, TaskKey
from foreman.controller.placeable import PlaceableLanes
from foreman.controller.plan import PlacementOrder, Plan, QueueStatusWrite, StatusWrite, plan_pass
from foreman.controller.waiting import line_up
from tests.factories import T0, node, task
from tests.unit.controller.test_plan import CONFIG, cache_of, status_writes


def queue(name: str, **spec: Any) -> TaskQueue:
    return TaskQueue.model_validate({"metadata": {"name": name, "resourceVersion": "1"}, "spec": spec})


def with_queues(cache: Cache, *queues: TaskQueue, labels: dict[str, dict[str, str]] | None = None) -> Cache:
    cache.replace_queues(queues)
    cache.replace_namespace_labels(labels or {})
    return cache


def placed(plan: Plan) -> list[str]:
    return [w.task.name for w in plan.writes if isinstance(w, StatusWrite) and w.placed]


def run(cache: Cache, lanes: PlaceableLanes[TaskKey, PlacementOrder] | None = None, **options: Any) -> Plan:
    options.setdefault("write_labels", False)  # the node label is another story (test_plan.py)
    return plan_pass(cache, PlaceableLanes() if lanes is None else lanes, cache.all_tasks(), T0, CONFIG, **options)


def test_queues_take_turns_by_weight_and_priority_orders_each_line() -> None:
    tasks = [task(f"a{i}", queue="a", priority=i) for i in range(10)] + [task(f"b{i}", queue="b") for i in range(10)]
    cache = with_queues(cache_of(node("n", slots=8), *tasks), queue("a", weight=3), queue("b"))
    order = placed(run(cache))
    assert sum(name.startswith("a") for name in order) == 6
    assert [name for name in order if name.startswith("a")] == ["a9", "a8", "a7", "a6", "a5", "a4"]


def test_a_namespace_selector_puts_a_namespace_in_its_queue_and_the_rest_in_default() -> None:
    cache = with_queues(
        cache_of(node("n", slots=1), task("x", namespace="team-a"), task("y", namespace="other")),
        queue("capped", maxRunning=0, namespaceSelector={"matchLabels": {"team": "a"}}),
        labels={"team-a": {"team": "a"}, "other": {}},
    )
    plan = run(cache)
    assert placed(plan) == ["y"]
    assert status_writes(plan) == {"y": ("FleetNodeAssigned", "Scheduled"), "x": ("QueueFull", "Pending")}
    assert plan.full == {"capped"}


def test_queue_full_is_written_once_and_lifted_when_the_queue_has_room() -> None:
    running = task("r", queue="q", phase="Running", assignedNode="n")
    waiting = [task(f"w{i}", queue="q") for i in range(3)]
    cache = with_queues(cache_of(node("n", slots=4), running, *waiting), queue("q", maxRunning=2))
    lanes: PlaceableLanes[TaskKey, PlacementOrder] = PlaceableLanes()
    first = run(cache, lanes)
    assert placed(first) == ["w0"]
    held = dict.fromkeys(("w1", "w2"), ("QueueFull", "Pending"))
    assert status_writes(first) == {"w0": ("FleetNodeAssigned", "Scheduled"), **held}
    for write in first.writes:  # the writes' answers come back into the cache
        assert isinstance(write, StatusWrite)
        stored(cache, task(write.task.name, queue="q", **_status_after(write)))
    again = plan_pass(cache, lanes, set(), T0, CONFIG, full_before=first.full, nodes_changed=False, write_labels=False)
    assert again.writes == []  # nothing changed: no write
    stored(cache, task("r", queue="q", phase="Succeeded"))
    freed = plan_pass(
        cache, lanes, {("ns", "r")}, T0, CONFIG, full_before=again.full, nodes_changed=False, write_labels=False
    )
    assert placed(freed) == ["w1"]  # the slot the cap freed goes to the next in line; w2 stays QueueFull
    assert "w2" not in status_writes(freed)


def _status_after(write: StatusWrite) -> dict[str, Any]:
    return {key: value for key, value in write.patch.items() if key in ("phase", "assignedNode", "conditions")}


def stored(cache: Cache, changed: AgenticTask) -> None:
    """A task as the watch brings it back changed (the factory's tasks all have resourceVersion 1)."""
    cache.remove_task(key_of(changed))
    cache.upsert_task(changed)


def test_a_task_naming_a_queue_that_does_not_exist_waits_without_a_slot() -> None:
    cache = cache_of(node("n"), task("t", queue="nope"), task("d", queue="default"))
    plan = run(cache)
    assert status_writes(plan) == {"t": ("QueueNotFound", "Pending"), "d": ("FleetNodeAssigned", "Scheduled")}
    assert cache.set_queue(queue("nope"), exists=True) == cache.all_tasks()  # its arrival looks at every task again


def test_per_accelerator_caps_send_a_task_elsewhere_or_keep_it_waiting() -> None:
    cache = with_queues(
        cache_of(
            node("a-gpu", accelerator="cuda", slots=4), node("b-cpu", slots=1), *(task(f"t{i}") for i in range(4))
        ),
        queue("default", maxRunningPerAccelerator={"cuda": 2}),
    )
    plan = run(cache)
    assert {w.task.name: w.patch["assignedNode"] for w in plan.writes if isinstance(w, StatusWrite) and w.placed} == {
        "t0": "a-gpu", "t1": "a-gpu", "t2": "b-cpu",
    }  # fmt: skip


def test_queue_status_is_written_when_it_changed_and_not_more_often_than_every_few_seconds() -> None:
    cache = with_queues(cache_of(node("n"), task("t", queue="q"), task("u", queue="q")), queue("q"))
    plan = run(cache, queues_written_at={})
    (write,) = [w for w in plan.writes if isinstance(w, QueueStatusWrite)]
    assert write.patch == {"running": 1, "pending": 1, "share": 1.0}
    soon = run(cache, queues_written_at={"q": T0 - timedelta(seconds=1)})
    assert not [w for w in soon.writes if isinstance(w, QueueStatusWrite)]


def test_line_up_says_why_and_where_and_the_controller_places_in_that_order() -> None:
    up = task("up")  # Pending: its dependant waits for it
    tasks = [task(f"q{i}", queue="q", priority=-i) for i in range(4)]
    cache = with_queues(
        cache_of(node("busy", slots=1), task("holder", phase="Running", assignedNode="busy"), up, *tasks),
        queue("q"),
    )
    cache.upsert_task(task("after", dependsOn=["up"]))
    cache.upsert_task(task("huge", requiredCapability={"minRAMGB": 512}))
    waiting = line_up(cache, T0)
    assert {name: (w.queue, w.position, w.reason) for (_, name), w in waiting.items()} == {
        "up": ("default", 2, "SlotBusy"),
        "huge": ("default", 1, "NoFittingNode"),  # the same age and priority: by name
        "after": ("default", None, "WaitingForDependencies"),
        **{f"q{i}": ("q", i + 1, "SlotBusy") for i in range(4)},
    }
    assert waiting[("ns", "q2")].sentence() == (
        "Pending in number 3 in the line of queue q: waiting for a free slot on a fitting node (SlotBusy)."
    )
    stored(cache, task("holder", phase="Succeeded"))
    cache.replace_queues([queue("q", weight=1000)])  # q's turn first; within it, the line's order
    cache.upsert_node(node("busy", slots=4, labels={"more": "slots"}), T0)
    order = [name for name in placed(run(cache)) if name.startswith("q")]
    assert order == sorted(order, key=lambda name: waiting[("ns", name)].position or 0)
