"""Placement policies on a simulated heterogeneous fleet: pure placement (the controller's own Placer) driven by a
discrete-event clock, no apiserver. 20 nodes of one slot serve mixed models at 8 to 80 tokens per second (a big model
at half the node's speed); 2,000 agent tasks of mixed size (500 to 20,000 completion tokens). Two arrival patterns:
all at once (the fleet saturated until the end), and over time at half the fleet's capacity (nodes often idle, so
the policy has a choice). Each policy's makespan and mean task latency (arrival to finish) are reported as ratios to
first-fit's, and makespan to a lower bound: the total work over the total fleet speed (every node busy on its best
model, no constraint, no arrivals: optimistic), and to the optimum: the shortest makespan any placement could reach,
even knowing every task's size and splitting tasks across nodes (`optimum`), so no policy can beat it.
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
from dataclasses import dataclass

from foreman.controller.match import POLICIES, Need, Offer, PlacementPolicy, Placer, Usage

MODELS = ("qwen2.5-coder:32b", "qwen2.5-coder:7b", "llama3.1:8b")
SPEED_FACTOR = {MODELS[0]: 0.5, MODELS[1]: 1.0, MODELS[2]: 1.0}
"""A model's speed on a node, as a fraction of the node's speed: the big model runs at half the small ones'."""


@dataclass(frozen=True)
class SimTask:
    name: str
    model: str
    tokens: int
    """Completion tokens the agent generates over its turns: its work."""
    arrival: float


@dataclass(frozen=True)
class Result:
    makespan: float
    mean_latency: float


def fleet(seed: int = 11) -> list[Offer]:
    """20 nodes named in no order of speed: a few fast GPU boxes, many slow Macs and CPU servers."""
    rng = random.Random(seed)
    speeds = [80, 75, 60, 55, 45, 40, 35, 30, 25, 22, 20, 18, 15, 14, 12, 11, 10, 9, 8, 8]
    rng.shuffle(speeds)
    offers = []
    for index, speed in enumerate(speeds):
        served = [m for m in MODELS if rng.random() < 0.7] or [MODELS[1]]
        # NB: the big model runs slower than the small ones on the same node
        rates = {m: float(speed) * SPEED_FACTOR[m] for m in served}
        offers.append(Offer(f"node-{index:02}", "cuda", 64, 32768, slots=1, models=dict.fromkeys(served), speeds=rates))
    return offers


def workload(offers: list[Offer], load: float | None, count: int = 2000, seed: int = 5) -> list[SimTask]:
    """Mixed sizes (a quick review to a long fix); `load`: arrivals (Poisson) at that fraction of what the fleet can
    do, or None for all at once."""
    rng = random.Random(seed)
    served = [m for m in MODELS if any(m in o.models for o in offers)]
    sizes = [rng.choice([500, 2000, 8000, 20000]) for _ in range(count)]
    gap = statistics.mean(sizes) / (capacity(offers) * load) if load else 0.0
    clock = 0.0
    tasks = []
    for index, size in enumerate(sizes):
        clock += rng.expovariate(1 / gap) if gap else 0.0
        tasks.append(SimTask(f"t{index}", rng.choice(served), size, clock))
    return tasks


def capacity(offers: list[Offer]) -> float:
    """Tokens per second of the whole fleet, each node on its best model."""
    return sum(max(o.speeds.values()) * o.slots for o in offers)


def simulate(offers: list[Offer], tasks: list[SimTask], policy: PlacementPolicy) -> Result:
    """FIFO by arrival, as the controller orders equal-priority tasks; a task runs at its node's speed for its model."""
    by_name = {offer.name: offer for offer in offers}
    busy: dict[str, int] = {}
    finishing: list[tuple[float, str]] = []  # (time, node)
    waiting: list[SimTask] = []
    latencies: list[float] = []
    arrivals = iter(sorted(tasks, key=lambda t: t.arrival))
    upcoming = next(arrivals, None)
    now = 0.0
    while upcoming is not None or waiting or finishing:
        next_arrival = upcoming.arrival if upcoming is not None else float("inf")
        next_finish = finishing[0][0] if finishing else float("inf")
        now = min(next_arrival, next_finish)
        while finishing and finishing[0][0] <= now:
            _, node = heapq.heappop(finishing)
            busy[node] -= 1
        while upcoming is not None and upcoming.arrival <= now:
            waiting.append(upcoming)
            upcoming = next(arrivals, None)
        placer = Placer(offers, {name: Usage(slots=n) for name, n in busy.items()}, policy=policy)
        still: list[SimTask] = []
        for task in waiting:
            node = placer.place(Need("any", model=task.model, executor="agent")) if placer.has_capacity() else None
            if node is None:
                still.append(task)
                continue
            done = now + task.tokens / by_name[node].speeds[task.model]
            busy[node] = busy.get(node, 0) + 1
            heapq.heappush(finishing, (done, node))
            latencies.append(done - task.arrival)
        waiting = still
    return Result(makespan=now, mean_latency=statistics.mean(latencies))


def lower_bound(offers: list[Offer], tasks: list[SimTask]) -> float:
    return sum(t.tokens for t in tasks) / capacity(offers)


def optimum(offers: list[Offer], tasks: list[SimTask]) -> float:
    """The shortest makespan of any placement, all tasks there at once, even one that knows every task's size and may
    split a task across nodes (so a true lower bound, and reachable only by splitting).

    With a model's speed a fixed fraction of its node's (`SPEED_FACTOR`), each task's work in node-speed units is its
    tokens over that fraction, and the question is a transportation problem: work of each model to the nodes serving
    it, each node doing `speed x T` in time T. By Gale's theorem it is feasible iff every set of models fits the nodes
    serving any of them, so T is the largest (their work) / (those nodes' speed) over the sets of models.
    """
    work = {m: sum(t.tokens for t in tasks if t.model == m) / SPEED_FACTOR[m] for m in MODELS}
    speed = {o.name: max(o.speeds[m] / SPEED_FACTOR[m] for m in o.speeds) * o.slots for o in offers}
    return max(
        sum(work[m] for m in chosen) / sum(speed[o.name] for o in offers if set(o.models) & set(chosen))
        for size in range(1, len(MODELS) + 1)
        for chosen in itertools.combinations(MODELS, size)
        if any(set(o.models) & set(chosen) for o in offers)
    )


def compare(load: float | None) -> dict[str, dict[str, float]]:
    offers = fleet()
    tasks = workload(offers, load)
    results = {policy: simulate(offers, tasks, policy) for policy in POLICIES}
    base = results["first-fit"]
    bound = lower_bound(offers, tasks)
    best = optimum(offers, tasks)
    return {
        policy: {
            "makespan_s": round(result.makespan, 1),
            "mean_latency_s": round(result.mean_latency, 1),
            "makespan_vs_first_fit": round(result.makespan / base.makespan, 3),
            "latency_vs_first_fit": round(result.mean_latency / base.mean_latency, 3),
            "makespan_vs_lower_bound": round(result.makespan / bound, 3),
            "makespan_vs_optimum": round(result.makespan / best, 3),
            "optimum_vs_lower_bound": round(best / bound, 3),
        }
        for policy, result in results.items()
    }


if __name__ == "__main__":
    import json

    print(json.dumps({"all at once": compare(None), "half load": compare(0.5)}, indent=2))
