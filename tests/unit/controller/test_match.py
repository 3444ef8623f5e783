import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foreman.controller.match import POLICIES, Need, Offer, PlacementPolicy, Placer, Usage, choose, fits

pytestmark = pytest.mark.timeout(30, func_only=True)  # NB: it searches placements exhaustively (hypothesis)

ACCELERATORS = ["cuda", "metal", "rocm", "cpu"]
MODELS = ["qwen2.5-coder:32b", "llama3.1:8b", "phi-3"]

offers_strategy = st.lists(
    st.builds(
        Offer,
        name=st.text("abcdef", min_size=1, max_size=4),
        accelerator=st.sampled_from(ACCELERATORS),
        ram_gb=st.sampled_from([0, 8, 16, 64, 128]),
        context_tokens=st.sampled_from([0, 8192, 32768, 131072]),
        slots=st.integers(1, 3),
        labels=st.dictionaries(st.sampled_from(["pool", "zone"]), st.sampled_from(["a", "b"]), max_size=2),
        executors=st.frozensets(st.sampled_from(["stub", "command"])),
        models=st.dictionaries(st.sampled_from(MODELS), st.sampled_from([None, 4096, 32768]), max_size=3),
        speeds=st.dictionaries(st.sampled_from(MODELS), st.sampled_from([8.0, 20.0, 45.0, 80.0]), max_size=3),
    ),
    max_size=8,
    unique_by=lambda offer: offer.name,
)
needs_strategy = st.builds(
    Need,
    accelerator=st.sampled_from([*ACCELERATORS, "any"]),
    ram_gb=st.sampled_from([0, 4, 16, 48, 100]),
    context_tokens=st.sampled_from([0, 4096, 32768, 100000]),
    selector=st.lists(st.tuples(st.sampled_from(["pool", "zone"]), st.sampled_from(["a", "b"])), max_size=1).map(tuple),
    executor=st.sampled_from(["stub", "command"]),
    model=st.sampled_from([None, *MODELS]),
)


def test_fit_table() -> None:
    offer = Offer("n", "cuda", ram_gb=80, context_tokens=131072, slots=2, labels={"pool": "a"})
    assert fits(Need("cuda", 48, 100000, (("pool", "a"),)), offer, Usage())
    assert fits(Need("any"), offer, Usage())
    assert not fits(Need("metal"), offer, Usage())
    assert not fits(Need("cuda", ram_gb=48), offer, Usage(slots=1, ram_gb=40))  # 80 - 40 < 48
    assert not fits(Need("cuda", context_tokens=200000), offer, Usage())
    assert not fits(Need("cuda", selector=(("pool", "b"),)), offer, Usage())
    assert not fits(Need("any"), offer, Usage(slots=2))
    picky = Offer("p", "cpu", 16, 0, slots=1, executors=frozenset({"stub"}))
    assert fits(Need("cpu", executor="stub"), picky, Usage())
    assert not fits(Need("cpu", executor="command"), picky, Usage())
    assert fits(Need("cpu", executor="command"), Offer("u", "cpu", 16, 0, slots=1), Usage())  # not advertised


@settings(max_examples=300)
@given(offers=offers_strategy, needs=st.lists(needs_strategy, max_size=20), policy=st.sampled_from(POLICIES))
def test_placement_respects_constraints_order_and_capacity(
    offers: list[Offer], needs: list[Need], policy: PlacementPolicy
) -> None:
    ordered = sorted(offers, key=lambda offer: offer.name)
    placer = Placer(offers, {}, policy=policy)
    usage: dict[str, Usage] = {}
    for need in needs:
        chosen = placer.place(need)
        # the same answer as the policy's plain scan over every node by name, with the usage so far
        assert chosen == choose(need, ordered, usage, policy)
        if chosen is not None:
            offer = next(o for o in offers if o.name == chosen)
            assert fits(need, offer, usage.get(chosen, Usage()))
            used = usage.setdefault(chosen, Usage())
            used.slots += 1
            used.ram_gb += need.ram_gb
    for offer in offers:
        used = usage.get(offer.name, Usage())
        assert used.slots <= offer.slots
        assert used.ram_gb <= offer.ram_gb


def test_existing_usage_counts() -> None:
    offers = [Offer("a", "cpu", 16, 0, slots=1), Offer("b", "cpu", 16, 0, slots=1)]
    placer = Placer(offers, {"a": Usage(slots=1, ram_gb=0)})
    assert placer.place(Need("cpu")) == "b"
    assert placer.place(Need("cpu")) is None
    assert placer.fits_when_empty(Need("cpu"))
    assert not placer.fits_when_empty(Need("cuda"))


@settings(max_examples=500)
@given(
    offers=offers_strategy,
    need=needs_strategy,
    used=st.dictionaries(st.text("abcdef", min_size=1, max_size=4), st.integers(0, 2)),
)
def test_each_policy_picks_what_it_promises(offers: list[Offer], need: Need, used: dict[str, int]) -> None:
    ordered = sorted(offers, key=lambda offer: offer.name)
    usage = {name: Usage(slots=slots) for name, slots in used.items()}
    fitting = [o for o in ordered if fits(need, o, usage.get(o.name, Usage()))]
    picks = {policy: choose(need, ordered, usage, policy) for policy in POLICIES}
    if not fitting:
        assert set(picks.values()) == {None}
        return

    def free(offer: Offer) -> int:
        return offer.slots - usage.get(offer.name, Usage()).slots

    assert picks["first-fit"] == fitting[0].name
    most = max(free(o) for o in fitting)
    assert picks["spread"] == next(o.name for o in fitting if free(o) == most)
    known = [o for o in fitting if need.model is not None and need.model in o.speeds]
    fastest = next(o for o in fitting if o.name == picks["fastest"])
    if known:
        assert need.model is not None
        top = max(o.speeds[need.model] for o in known)
        assert fastest.speeds.get(need.model) == top
        tied = [o for o in known if o.speeds[need.model] == top]
    else:
        tied = fitting  # no speed known: the spread rule decides
    assert free(fastest) == max(free(o) for o in tied)
    assert fastest.name == min(o.name for o in tied if free(o) == free(fastest))


def test_models_and_their_context() -> None:
    node = Offer("n", "cuda", 80, 131072, slots=2, models={"qwen2.5-coder:32b": 32768, "llama3.1:8b": None})
    assert fits(Need("any", model="qwen2.5-coder:32b", context_tokens=32768), node, Usage())
    assert not fits(Need("any", model="qwen2.5-coder:32b", context_tokens=65536), node, Usage())  # that model's
    assert fits(Need("any", model="llama3.1:8b", context_tokens=65536), node, Usage())  # unknown: the node's
    assert not fits(Need("any", model="phi-3"), node, Usage())
    assert fits(Need("any"), node, Usage())  # no model named: any node


def test_agents_that_run_commands_go_only_where_commands_can_run() -> None:
    def node(sandbox: str | None) -> Offer:
        return Offer("n", "cpu", 16, 0, slots=1, sandbox=sandbox)

    for kind in ("bubblewrap", "seatbelt", "none", None):
        assert fits(Need("any", commands=True), node(kind), Usage())
    assert not fits(Need("any", commands=True), node("unavailable"), Usage())
    assert fits(Need("any"), node("unavailable"), Usage())  # an agent without run goes anywhere
    assert [
        k
        for k in ("bubblewrap", "seatbelt", "none", "unavailable", None)
        if fits(Need("any", sandbox=True), node(k), Usage())
    ] == ["bubblewrap", "seatbelt"]
