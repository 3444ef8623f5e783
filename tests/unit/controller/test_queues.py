"""Weighted fair share between queues: turns follow weights, caps hold, nobody starves, idle share is used."""

from __future__ import annotations

import random
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from foreman.api.models.queues import LabelSelector
from foreman.controller.queues import (
    FairShare,
    QueueLoad,
    QueueRule,
    capped_accelerators,
    loads_of,
    positions,
    queue_exists,
    queue_of,
    shares,
)


def run_pass(share: FairShare[str], slots: int, fits: set[str] | None = None) -> list[str]:
    """A placement pass over `slots` free slots; `fits`: tasks that can be placed (all when None)."""
    placed = []
    while slots and (turn := share.next()) is not None:
        _, task = turn
        if fits is None or task in fits:
            share.placed("cuda")
            placed.append(task)
            slots -= 1
        else:
            share.skipped()
    return placed


def test_turns_follow_the_weights_under_contention() -> None:
    rules = {"a": QueueRule("a", 1), "b": QueueRule("b", 2), "c": QueueRule("c", 4)}
    waiting = {name: [f"{name}{i}" for i in range(100)] for name in rules}
    share = FairShare(waiting, {}, rules)
    placed = run_pass(share, 70)
    counts = {name: sum(task.startswith(name) for task in placed) for name in rules}
    assert counts == {"a": 10, "b": 20, "c": 40}


def test_an_idle_share_is_used_and_a_cap_is_a_hard_limit() -> None:
    rules = {"a": QueueRule("a", 1), "b": QueueRule("b", 10, max_running=3)}
    share = FairShare({"a": ["a1", "a2", "a3", "a4", "a5"], "b": ["b1", "b2", "b3", "b4", "b5"]}, {}, rules)
    assert sorted(run_pass(share, 10)) == ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3"]
    assert share.full_queues() == {"b"}
    alone = FairShare({"a": ["x", "y"]}, {"a": QueueLoad(running=50)}, {"a": QueueRule("a", 1)})
    assert run_pass(alone, 5) == ["x", "y"]  # far above its share, but nobody else waits


def test_a_task_that_fits_nowhere_lets_the_queues_next_task_go() -> None:
    share = FairShare({"a": ["big", "small"]}, {}, {"a": QueueRule("a")})
    assert run_pass(share, 1, fits={"small"}) == ["small"]


def test_caps_per_accelerator_and_positions() -> None:
    rule = QueueRule("a", max_running_per_accelerator={"cuda": 2, "metal": 1})
    assert capped_accelerators(rule, QueueLoad(1, {"cuda": 1})) == set()
    assert capped_accelerators(rule, QueueLoad(3, {"cuda": 2, "metal": 1})) == {"cuda", "metal"}
    share = FairShare({"a": ["x", "y", "z"]}, {}, {"a": rule})
    assert share.next() == ("a", "x")
    share.placed("cuda")
    assert share.next() == ("a", "y")
    assert share.capped_accelerators() == set()
    share.placed("cuda")
    assert share.next() == ("a", "z")
    assert share.capped_accelerators() == {"cuda"}
    assert positions({"a": ["x", "y"], "b": ["z"]}) == {"x": 1, "y": 2, "z": 1}


@settings(max_examples=300, deadline=None)
@given(
    queues=st.lists(
        st.tuples(st.integers(1, 8), st.one_of(st.none(), st.integers(0, 6)), st.integers(0, 5), st.integers(0, 12)),
        min_size=1,
        max_size=4,
    ),
    slots=st.integers(0, 30),
)
def test_caps_hold_the_pass_is_work_conserving_and_turns_are_fair(
    queues: list[tuple[int, int | None, int, int]], slots: int
) -> None:
    """(weight, maxRunning, running now, waiting) per queue; `slots` free in the fleet."""
    names = [f"q{i}" for i in range(len(queues))]
    rules = {n: QueueRule(n, weight, cap) for n, (weight, cap, _, _) in zip(names, queues, strict=True)}
    loads = {n: QueueLoad(now) for n, (_, _, now, _) in zip(names, queues, strict=True)}
    waiting = {n: [f"{n}-{j}" for j in range(count)] for n, (_, _, _, count) in zip(names, queues, strict=True)}
    share = FairShare(waiting, loads, rules)
    placed = dict.fromkeys(names, 0)

    def running(name: str) -> int:
        return loads[name].running + placed[name]

    def can_take(name: str) -> bool:
        cap = rules[name].max_running
        return placed[name] < len(waiting[name]) and (cap is None or running(name) < cap)

    free = slots
    while free and (turn := share.next()) is not None:
        queue, _ = turn
        # fair: no queue that could still take a task is further below its share than the one chosen
        assert all(
            running(queue) / rules[queue].weight <= running(other) / rules[other].weight
            for other in names
            if can_take(other)
        )
        share.placed("cpu")
        placed[queue] += 1
        free -= 1
    for name in names:
        cap = rules[name].max_running
        if cap is not None:
            assert placed[name] == 0 or running(name) <= cap  # never past the cap
        assert not can_take(name) or free == 0  # work-conserving: tasks wait only for a cap or for a slot


def test_no_queue_starves_over_many_passes() -> None:
    """Slots free one at a time, as tasks finish; every queue keeps getting turns in proportion to its weight."""
    rng = random.Random(3)
    rules = {"a": QueueRule("a", 1), "b": QueueRule("b", 3)}
    loads = {"a": QueueLoad(), "b": QueueLoad()}
    running: list[str] = []
    waiting = {"a": [f"a{i}" for i in range(10_000)], "b": [f"b{i}" for i in range(10_000)]}
    started = {"a": 0, "b": 0}
    for _ in range(2_000):
        share = FairShare({q: waiting[q][started[q] :] for q in waiting}, loads, rules)
        for task in run_pass(share, 1 if len(running) >= 20 else 20 - len(running)):
            started[task[0]] += 1
            running.append(task)
        loads = share.loads
        done = running.pop(rng.randrange(len(running)))
        loads[done[0]].running -= 1
    assert 2.5 < started["b"] / started["a"] < 3.5


def test_a_task_is_in_the_queue_it_names_else_the_first_selecting_its_namespace_else_default() -> None:
    team = LabelSelector.model_validate({"matchLabels": {"team": "a"}})
    rules = {
        "b-queue": QueueRule("b-queue", selector=team),
        "a-queue": QueueRule("a-queue", selector=team),
        "named-only": QueueRule("named-only"),
        "everyone": QueueRule("everyone", selector=LabelSelector()),
    }
    labels = {"ns-a": {"team": "a"}, "ns-b": {"team": "b"}}
    assert queue_of("named-only", "ns-a", rules, labels) == "named-only"
    assert queue_of("missing", "ns-a", rules, labels) == "missing"
    assert queue_of(None, "ns-a", rules, labels) == "a-queue"  # the first by name of those selecting it
    assert queue_of(None, "ns-b", rules, labels) == "everyone"  # {} selects every namespace
    assert queue_of(None, "ns-b", {"a-queue": rules["a-queue"]}, labels) == "default"
    assert queue_of(None, "unknown", {"a-queue": rules["a-queue"]}, labels) == "default"
    assert queue_exists("default", {})
    assert queue_exists("a-queue", rules)
    assert not queue_exists("missing", rules)


def test_loads_and_shares() -> None:
    loads = loads_of([("a", "cuda"), ("a", "cpu"), ("b", "cuda"), ("a", "cuda")])
    assert loads == {"a": QueueLoad(3, {"cuda": 2, "cpu": 1}), "b": QueueLoad(1, {"cuda": 1})}
    assert shares(loads) == {"a": 0.75, "b": 0.25}
    assert shares({"a": QueueLoad()}) == {"a": 0.0}


def test_the_lines_are_read_lazily() -> None:
    """A pass that fills the fleet after a few tasks reads no further into a queue of thousands."""
    read: list[int] = []

    def line() -> Iterator[int]:
        for index in range(10_000):
            read.append(index)
            yield index

    share = FairShare({"a": line()}, {}, {"a": QueueRule("a")})
    assert run_pass(share, 3) == [0, 1, 2]  # type: ignore[arg-type]
    assert len(read) <= 4
