"""The cost rules of policy warm (controller/warmth.py) and the policy in the Placer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from foreman.api.lifecycle.modelload import MAX_LOAD_SECONDS
from foreman.controller.match import Need, Offer, Placer, Usage
from foreman.controller.warmth import ModelOnNode, NodeModels, cost


def node(memory: float | None, **models: ModelOnNode) -> NodeModels:
    return NodeModels(models, {name: name for name in models}, memory)


def test_loaded_costs_nothing_and_cold_costs_its_load_time() -> None:
    models = node(24, a=ModelOnNode(5, 12, loaded=True), b=ModelOnNode(5, 30))
    assert cost("a", models, {}, {}) == 0
    assert cost("b", models, {}, {}) == 30


def test_eviction_adds_the_cost_to_the_tasks_queued_for_the_evicted_model() -> None:
    models = node(24, a=ModelOnNode(20, 10, loaded=True), b=ModelOnNode(20, 30))
    assert cost("b", models, {}, {}) == 30
    assert cost("b", models, {}, {"a": 3}) == 30 + 3 * 10


def test_never_where_it_cannot_fit_next_to_a_model_in_use() -> None:
    models = node(24, a=ModelOnNode(20, 10, loaded=True), b=ModelOnNode(20, 30))
    assert cost("b", models, {"a": 1}, {}) is None


@given(st.floats(allow_nan=True, allow_infinity=True) | st.none(), st.floats(0, 1000))
def test_bad_load_times_and_sizes_are_clamped(load: float | None, size: float) -> None:
    models = node(64, m=ModelOnNode(size, load))
    seconds = cost("m", models, {}, {})
    assert seconds is not None
    assert 0 <= seconds <= MAX_LOAD_SECONDS
    assert models.size_of("m") <= 64


def offer(name: str, *loaded: str, memory: float = 24) -> Offer:
    states = {m: ModelOnNode(8, 20, loaded=m in loaded) for m in ("a", "b", "c")}
    return Offer(name, "cuda", 64, 8192, 1, models=dict.fromkeys(states),
                 warmth=NodeModels(states, {m: m for m in states}, memory))  # fmt: skip


def test_warm_goes_where_the_model_is_loaded_first_fit_does_not() -> None:
    offers = [offer("n1", "a"), offer("n2", "b")]
    need = Need(model="b")
    assert Placer(offers, {}, policy="warm").place(need) == "n2"
    assert Placer(offers, {}, policy="first-fit").place(need) == "n1"


def test_warm_only_waits_while_the_warm_node_is_busy() -> None:
    offers = [offer("n1", "a"), offer("n2", "b")]
    placer = Placer(offers, {"n2": Usage(1, 0, {"b": 1})}, policy="warm")
    need = Need(model="b")
    assert placer.warm_somewhere(need)
    assert placer.place(need, warm_only=True) is None
    assert placer.place(need) == "n1"
    assert placer.last_cost == 20


def test_warm_avoids_an_eviction_that_hurts_queued_tasks() -> None:
    # NB: c fits on neither next to what is loaded; on n1 it evicts a, which five tasks wait for
    hurting = Placer([offer("n1", "a", memory=8), offer("n2", "b", memory=8)], {}, policy="warm", queued={"a": 5})
    assert hurting.place(Need(model="c")) == "n2"
