"""Warm-model placement on a simulated fleet (issue 32): pure, deterministic, seeded; the controller's own Placer
chooses (controller/match.py), a discrete-event clock runs it, no apiserver.

20 nodes of one slot, 4 kinds (GPU 24 GB, GPU 80 GB, Mac 64 GB unified, CPU 32 GB), 6 models of 1-40 GB, each served
where it fits; a load takes the shared estimate from size (api/lifecycle/modelload.py: `LOAD_OVERHEAD_S` + size /
`DISK_GB_PER_S`), and a node evicts its least recently used models until the new one fits. Tasks arrive as a Poisson
stream at 30, 60 and 90 % of the fleet's capacity, Zipf-popular models, exponential run times (mean `MEAN_RUN_S`).
Policies, on the same arrivals: first-fit, warm without a wait, warm with `DELAY_S`. Figures: loads per 1,000 tasks,
mean and p95 time from create to Running (a load counts: a task runs once its model is loaded), makespan, and each
policy's mean create-to-Running over the lower bound with no loads at all (the same arrivals, first-fit, loads free).
"""

from __future__ import annotations

import heapq
import random
import statistics
from dataclasses import dataclass, field

from foreman.api.lifecycle.modelload import estimated_load_seconds
from foreman.controller.match import Need, Offer, PlacementPolicy, Placer, Usage
from foreman.controller.warmth import ModelOnNode, NodeModels

MODELS = {"m1": 1.0, "m4": 4.0, "m8": 8.0, "m14": 14.0, "m24": 22.0, "m40": 40.0}
"""Name -> size (GB); the 24 GB-class model at 22 GB so that it fits a 24 GB card."""
KINDS = (("gpu24", "cuda", 24.0), ("gpu80", "cuda", 80.0), ("mac64", "metal", 64.0), ("cpu32", "cpu", 32.0))
MEAN_RUN_S = 120.0
DELAY_S = 10.0
TASKS = 2000
ZIPF_S = 1.2


@dataclass
class NodeState:
    memory: float
    loaded: list[str] = field(default_factory=list)
    """Least recently used first."""

    def load(self, model: str) -> None:
        if model in self.loaded:
            self.loaded.remove(model)
        else:
            while sum(MODELS[m] for m in self.loaded) + MODELS[model] > self.memory:
                self.loaded.pop(0)
        self.loaded.append(model)


def load_seconds(model: str) -> float:
    return estimated_load_seconds(MODELS[model])


def fleet() -> dict[str, tuple[str, float]]:
    return {f"{kind}-{i}": (accelerator, memory) for kind, accelerator, memory in KINDS for i in range(5)}


def arrivals(utilisation: float, seed: int = 32) -> list[tuple[float, str, float]]:
    """(arrival, model, run seconds), Zipf-popular models in a shuffled order of popularity."""
    rng = random.Random(seed)
    names = list(MODELS)
    rng.shuffle(names)
    weights = [1 / (rank**ZIPF_S) for rank in range(1, len(names) + 1)]
    rate = utilisation * len(fleet()) / MEAN_RUN_S
    clock, tasks = 0.0, []
    for _ in range(TASKS):
        clock += rng.expovariate(rate)
        tasks.append((clock, rng.choices(names, weights)[0], rng.expovariate(1 / MEAN_RUN_S)))
    return tasks


@dataclass(frozen=True)
class Figures:
    loads_per_1000: float
    mean_s: float
    p95_s: float
    max_s: float
    makespan_s: float


def simulate(
    tasks: list[tuple[float, str, float]], policy: PlacementPolicy, delay: float, *, free_loads: bool = False
) -> Figures:
    nodes = {name: NodeState(memory) for name, (_, memory) in fleet().items()}
    accelerators = {name: accelerator for name, (accelerator, _) in fleet().items()}
    running: dict[str, str] = {}  # node -> model
    events: list[tuple[float, int, str]] = []  # (time, kind 0 finish / 1 wake, node or "")
    waiting: list[tuple[float, str, float]] = []
    started: list[float] = []
    loads, now, index = 0, 0.0, 0
    while index < len(tasks) or waiting or events:
        next_arrival = tasks[index][0] if index < len(tasks) else float("inf")
        now = min(next_arrival, events[0][0] if events else float("inf"))
        while events and events[0][0] <= now:
            _, kind, node = heapq.heappop(events)
            if kind == 0:
                running.pop(node)
        while index < len(tasks) and tasks[index][0] <= now:
            waiting.append(tasks[index])
            index += 1
        offers = [
            Offer(
                name,
                accelerators[name],
                64,
                32768,
                1,
                models={m: None for m in MODELS if MODELS[m] <= state.memory},
                warmth=NodeModels(
                    {
                        m: ModelOnNode(MODELS[m], load_seconds(m), m in state.loaded)
                        for m in MODELS
                        if MODELS[m] <= state.memory
                    },
                    {m: m for m in MODELS},
                    state.memory,
                ),
            )
            for name, state in nodes.items()
        ]
        queued: dict[str, int] = {}
        for _, model, _ in waiting:
            queued[model] = queued.get(model, 0) + 1
        usage = {node: Usage(1, 0.0, {model: 1}) for node, model in running.items()}
        placer = Placer(offers, usage, policy=policy, queued=queued)
        still = []
        for arrival, model, run in waiting:
            need = Need(model=model)
            hold = delay > 0 and now < arrival + delay and placer.warm_somewhere(need)
            node = placer.place(need, warm_only=hold) if placer.has_capacity() else None
            if node is None:
                still.append((arrival, model, run))
                if hold:
                    heapq.heappush(events, (arrival + delay, 1, ""))
                continue
            cold = model not in nodes[node].loaded
            loads += cold
            nodes[node].load(model)
            start = now + (load_seconds(model) if cold and not free_loads else 0.0)
            started.append(start - arrival)
            running[node] = model
            heapq.heappush(events, (start + run, 0, node))
        waiting = still
    ordered = sorted(started)
    return Figures(round(1000 * loads / len(tasks), 1), round(statistics.mean(started), 2),
                   round(ordered[int(0.95 * len(ordered))], 2), round(ordered[-1], 2), round(now, 1))  # fmt: skip


def compare(utilisation: float) -> dict[str, dict[str, float | None]]:
    tasks = arrivals(utilisation)
    bound = simulate(tasks, "first-fit", 0.0, free_loads=True)
    runs = {
        "first-fit": simulate(tasks, "first-fit", 0.0),
        "warm": simulate(tasks, "warm", 0.0),
        "warm+wait": simulate(tasks, "warm", DELAY_S),
    }
    # NB: at low load the bound's mean can be 0 (no task ever waits): no ratio then
    ratio = (lambda mean: round(mean / bound.mean_s, 2)) if bound.mean_s > 0 else (lambda mean: None)
    return {name: {**vars(f), "mean_vs_no_loads": ratio(f.mean_s)} for name, f in runs.items()}


if __name__ == "__main__":
    import json

    print(json.dumps({f"{u:.0%}": compare(u) for u in (0.3, 0.6, 0.9)}, indent=2))
