"""The optimum the placement benchmark measures policies against is a true lower bound (no policy beats it) and exact
on a case worked by hand: bench/fleet.py's claim that the earlier makespan targets lie below it rests on this."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from foreman.controller.match import POLICIES, Offer


@pytest.fixture(scope="module")
def fleet() -> ModuleType:
    path = Path(__file__).parents[3] / "bench" / "fleet.py"
    spec = importlib.util.spec_from_file_location("bench_fleet", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fleet"] = module  # NB: dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_the_optimum_on_a_case_worked_by_hand(fleet: ModuleType) -> None:
    big, small = fleet.MODELS[0], fleet.MODELS[1]
    offers = [
        Offer("fast", "cuda", 64, 8192, slots=1, models={small: None}, speeds={small: 100.0}),
        Offer("both", "cuda", 64, 8192, slots=1, models={big: None, small: None}, speeds={big: 25.0, small: 50.0}),
    ]
    tasks = [fleet.SimTask("b", big, 5000, 0.0), fleet.SimTask("s", small, 10000, 0.0)]
    # the big model only on "both" at 25/s: 200 s; all work (big counted at half speed) over both nodes: 20,000 / 150
    assert fleet.optimum(offers, tasks) == pytest.approx(200.0)


def test_no_policy_beats_the_optimum(fleet: ModuleType) -> None:
    offers = fleet.fleet()
    tasks = fleet.workload(offers, None, count=300)
    best = fleet.optimum(offers, tasks)
    assert best >= fleet.lower_bound(offers, tasks)
    for policy in POLICIES:
        assert fleet.simulate(offers, tasks, policy).makespan >= best
