from hypothesis import given, settings
from hypothesis import strategies as st

from foreman.controller.match import Need, Offer, Placer, Usage, first_fit, fits

ACCELERATORS = ["cuda", "metal", "rocm", "cpu"]

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
@given(offers=offers_strategy, needs=st.lists(needs_strategy, max_size=20))
def test_placement_respects_constraints_order_and_capacity(offers: list[Offer], needs: list[Need]) -> None:
    ordered = sorted(offers, key=lambda offer: offer.name)
    placer = Placer(offers, {})
    usage: dict[str, Usage] = {}
    for need in needs:
        chosen = placer.place(need)
        # the same answer as a plain first-fit scan by name over the usage so far
        assert chosen == first_fit(need, ordered, usage)
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
