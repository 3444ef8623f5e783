"""Fair share between queues on a simulated fleet: the controller's own FairShare (controller/queues.py) on a
discrete-event clock, no apiserver. Three queues of weights 1, 2 and 4 submit 1,000 tasks each at once over 20 nodes
of 2 slots; tasks run 2-30 s. Each queue's share of the slot-seconds used while all three still wait, divided by its
weight, and Jain's fairness index over those (1 when shares match weights exactly).
"""

from __future__ import annotations

import heapq
import random

from foreman.controller.queues import FairShare, QueueLoad, QueueRule

WEIGHTS = {"team-a": 1.0, "team-b": 2.0, "team-c": 4.0}
SLOTS = 40


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def simulate(seed: int = 9, per_queue: int = 1000) -> dict[str, float]:
    rng = random.Random(seed)
    rules = {name: QueueRule(name, weight) for name, weight in WEIGHTS.items()}
    waiting = {name: [(name, i, rng.uniform(2, 30)) for i in range(per_queue)] for name in WEIGHTS}
    loads = {name: QueueLoad() for name in WEIGHTS}
    running: list[tuple[float, str, float]] = []  # (finish, queue, start)
    used = dict.fromkeys(WEIGHTS, 0.0)
    now = 0.0
    while True:
        share = FairShare(waiting, loads, rules)
        while len(running) < SLOTS and (turn := share.next()) is not None:
            queue, (_, _, duration) = turn
            share.placed("cuda")
            heapq.heappush(running, (now + duration, queue, now))
            waiting[queue].pop(0)
        loads = share.loads | {q: loads.get(q, QueueLoad()) for q in WEIGHTS if q not in share.loads}
        if not running:
            break
        finish, queue, _ = heapq.heappop(running)
        if all(waiting.values()):  # the slot-seconds of the interval in which every queue waited
            for _, busy_queue, start in [*running, (finish, queue, 0.0)]:
                used[busy_queue] += finish - max(now, start) if start <= finish else 0.0
        now = finish
        loads[queue].running -= 1
    total = sum(used.values())
    ratios = {q: (used[q] / total) / (WEIGHTS[q] / sum(WEIGHTS.values())) for q in WEIGHTS}
    figures = {f"{q} share / weight share": round(r, 3) for q, r in ratios.items()}
    return {**figures, "jain": round(jain(list(ratios.values())), 4)}


if __name__ == "__main__":
    print(simulate())
