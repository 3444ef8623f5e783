"""What the worker advertises of its models' loading (worker/loadwatch.py): smoothed loaded state, measured load
times, sizes clamped, and the warnings, on an injected clock (plain seconds)."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from foreman.api.lifecycle import node_status
from foreman.api.lifecycle.modelload import MAX_LOAD_SECONDS, estimated_load_seconds
from foreman.api.models.base import utcnow
from foreman.api.models.nodes import ModelOffer, NodeCapability
from foreman.worker.loadwatch import (
    FLAP_CHANGES,
    STEADY_PROBES,
    ModelWatch,
    advertise,
    measured,
    observe,
    reports,
    want,
)


def probes(watch: ModelWatch, said: Iterable[tuple[float, bool | None]]) -> ModelWatch:
    for now, seen in said:
        watch = observe(watch, seen, now)
    return watch


def test_a_load_is_measured_from_the_task_that_wanted_it_to_the_probes_around_its_end() -> None:
    watch = probes(ModelWatch(), [(0, False), (10, False)])
    watch = want(watch, 12)
    assert watch.loading
    # the offering asks at once, then every second: not loaded until 31.0, loaded at 32.0 and 33.0
    watch = probes(watch, [(12.0, False), *((float(t), False) for t in range(13, 32)), (32.0, True)])
    assert (watch.loaded, watch.load_seconds) == (False, None)  # one probe is not steady yet
    watch = observe(watch, True, 33.0)
    assert (watch.loaded, watch.load_seconds, watch.loading) == (True, 19.5, False)  # midpoint 31.5 - 12


def test_measurements_are_a_moving_average() -> None:
    watch = measured(ModelWatch(), 20)
    assert measured(watch, 30).load_seconds == 23  # 20 + 0.3 * 10


def test_a_model_loaded_before_any_probe_saw_it_unloaded_after_the_want_is_not_measured() -> None:
    watch = want(probes(ModelWatch(), [(0, False)]), 5)
    watch = probes(watch, [(6, True), (7, True)])
    assert (watch.loaded, watch.load_seconds, watch.wanted_at) == (True, None, None)


def test_a_load_that_never_comes_is_forgotten() -> None:
    watch = want(probes(ModelWatch(), [(0, False)]), 1)
    watch = probes(watch, [(2, False), (MAX_LOAD_SECONDS + 10, False), (MAX_LOAD_SECONDS + 11, True)])
    watch = observe(watch, True, MAX_LOAD_SECONDS + 12)
    assert (watch.loaded, watch.load_seconds, watch.rejected) == (True, None, None)


def test_unbelievable_measurements_are_dropped_and_said() -> None:
    watch = measured(measured(ModelWatch(), 20), -5)
    assert (watch.load_seconds, watch.rejected) == (20, -5)
    (offer,), problems = advertise((ModelOffer(name="m", loaded=True, size_gb=4),), {"m": watch}, None)
    assert offer.load_seconds == 20
    assert [p.reason for p in problems] == ["LoadTimeOutOfRange"]
    assert measured(watch, 25).rejected is None


def test_until_measured_the_load_time_is_estimated_from_the_size() -> None:
    (sized, unsized), problems = advertise((ModelOffer(name="a", size_gb=8), ModelOffer(name="b")), {}, 24)
    assert (sized.load_seconds, unsized.load_seconds, problems) == (estimated_load_seconds(8), None, [])


def test_a_model_larger_than_the_memory_is_clamped_and_said() -> None:
    (offer,), problems = advertise((ModelOffer(name="big", size_gb=40),), {}, 24)
    assert (offer.size_gb, offer.load_seconds) == (24, estimated_load_seconds(24))
    status, reason, message = reports(problems)
    assert (status, reason) == (False, "ModelLargerThanMemory")
    assert "big is 40 GB, more than the node's 24 GB" in message
    assert reports([]) == (True, "ModelsAsServed", "sizes, load times and loaded models as the server says")


def test_a_list_that_flaps_every_probe_moves_nothing_and_is_said() -> None:
    watch = probes(ModelWatch(), [(float(t), t % 2 == 1) for t in range(12)])
    assert watch.loaded is False  # the first word, then never two probes alike
    assert watch.flapping
    (offer,), problems = advertise((ModelOffer(name="m", loaded=True),), {"m": watch}, None)
    assert offer.loaded is False
    assert [p.reason for p in problems] == ["LoadedListFlapping"]
    # a minute of quiet clears it
    watch = probes(watch, [(float(t), True) for t in range(12, 80)])
    assert (watch.loaded, watch.flapping) == (True, False)


def test_a_server_that_says_nothing_of_loading_advertises_nothing() -> None:
    watch = probes(ModelWatch(), [(0, True), (1, None)])
    (offer,), _ = advertise((ModelOffer(name="m"),), {"m": watch}, None)
    assert offer.loaded is None


saids = st.lists(st.booleans(), max_size=90)


@given(saids)
def test_every_change_of_the_advertised_state_held_for_steady_probes(said: list[bool]) -> None:
    watch = ModelWatch()
    for t, seen in enumerate(said):
        before = watch.loaded
        watch = observe(watch, seen, float(t))
        if before is not None and watch.loaded != before:
            assert said[t - STEADY_PROBES + 1 : t + 1] == [seen] * STEADY_PROBES
        assert watch.loaded is not None


@given(saids)
def test_flapping_is_said_exactly_when_the_server_changed_its_word_often_in_the_window(said: list[bool]) -> None:
    watch = ModelWatch()
    for t, seen in enumerate(said):
        watch = observe(watch, seen, float(t))  # one probe a second: the window holds the changes of the last 60 s
    now = len(said) - 1
    changes = sum(1 for t in range(max(1, now - 59), len(said)) if said[t] != said[t - 1])
    assert watch.flapping == (changes >= FLAP_CHANGES)


times = st.floats(-1e7, 1e7, allow_nan=False)


@given(st.lists(st.tuples(times, st.booleans() | st.none(), st.booleans()), max_size=40),
       st.floats(allow_nan=True, allow_infinity=True) | st.none(), st.none() | st.floats(0, 1e4))  # fmt: skip
def test_what_is_advertised_is_always_believable(
    events: list[tuple[float, bool | None, bool]], size: float | None, memory: float | None
) -> None:
    """Any probes and wants on any clock (it may even go back), any size the server says: the offer is one the CRD
    takes, its size within the memory, its load time within the bounds."""
    watch = ModelWatch()
    for now, seen, wanted in events:
        watch = want(watch, now) if wanted else observe(watch, seen, now)
    server_size = size if size is not None and 0 <= size < float("inf") else None
    (offer,), _ = advertise((ModelOffer(name="m", loaded=False, size_gb=server_size),), {"m": watch}, memory)
    ModelOffer.model_validate(offer.model_dump())
    if offer.size_gb is not None and memory is not None:
        assert offer.size_gb <= memory
    assert offer.load_seconds is None or 0 <= offer.load_seconds <= MAX_LOAD_SECONDS


def test_the_heartbeat_says_them_as_condition_model_reports_valid() -> None:
    _, problems = advertise((ModelOffer(name="big", size_gb=40),), {}, 24)
    body = node_status.heartbeat([], phase="Ready", now=utcnow(), capability=NodeCapability(), running=0,
                                 inference=None, model_reports=reports(problems))  # fmt: skip
    (condition,) = [c for c in body["conditions"] if c["type"] == "ModelReportsValid"]
    assert (condition["status"], condition["reason"]) == ("False", "ModelLargerThanMemory")
    bare = node_status.heartbeat([], phase="Ready", now=utcnow(), capability=NodeCapability(), running=0,
                                 inference=None)  # fmt: skip
    assert [c["type"] for c in bare["conditions"]] == ["Ready"]  # no model server said anything: no condition
