"""Placement of Pending tasks onto FleetNodes, as pure functions.

Slots and RAM in use come from the tasks the controller itself sees Scheduled or Running on each node, never from a
field nothing writes. A node fits a task when its accelerator, free RAM, labels, executors and model do; among the
fitting nodes the policy chooses: `first-fit` the first by name, `spread` the one with the most free slots (ties by
name), `fastest` the one with the highest measured tokens per second for the task's model (unknown speeds last, ties
by free slots, then name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from foreman.api.models.resources import AcceleratorRequest

CONFINED = ("bubblewrap", "seatbelt")
PlacementPolicy = Literal["first-fit", "spread", "fastest"]
POLICIES: tuple[PlacementPolicy, ...] = ("first-fit", "spread", "fastest")


@dataclass(frozen=True)
class Need:
    """What a task requires of a node (plain data, built from its spec)."""

    accelerator: AcceleratorRequest = "any"
    ram_gb: float = 0.0
    context_tokens: int = 0
    selector: tuple[tuple[str, str], ...] = ()
    executor: str = "stub"
    model: str | None = None
    """The model the task runs with: the node must serve it (by name or alias)."""
    commands: bool = False
    """Its agent runs commands (`run`): not on a node where no sandbox works."""
    sandbox: bool = False
    """Its commands must run confined (bubblewrap or Seatbelt; not an unconfined node)."""


@dataclass(frozen=True)
class Offer:
    """What an available node offers before any task is placed on it."""

    name: str
    accelerator: str
    ram_gb: float
    context_tokens: int
    slots: int
    labels: Mapping[str, str] = field(default_factory=dict)
    executors: frozenset[str] = frozenset()
    """Empty: not advertised (any executor is assumed)."""
    models: Mapping[str, int | None] = field(default_factory=dict)
    """Every name (and alias) of a model the node serves -> its context window, where known."""
    speeds: Mapping[str, float] = field(default_factory=dict)
    """Measured tokens per second, by model name and alias."""
    sandbox: str | None = None
    """Its agents' sandbox: bubblewrap, seatbelt, none (unconfined), unavailable (no commands); None: not said."""

    def context_for(self, model: str | None) -> int:
        """The context a task gets here: its model's where the node knows it, else the node's largest."""
        known = self.models.get(model) if model else None
        return known if known is not None else self.context_tokens


@dataclass
class Usage:
    slots: int = 0
    ram_gb: float = 0.0


def fits(need: Need, offer: Offer, usage: Usage) -> bool:
    return (
        usage.slots < offer.slots
        and (need.accelerator == "any" or need.accelerator == offer.accelerator)
        and need.ram_gb <= offer.ram_gb - usage.ram_gb
        and (need.model is None or need.model in offer.models)
        and need.context_tokens <= offer.context_for(need.model)
        and all(offer.labels.get(key) == value for key, value in need.selector)
        and (not offer.executors or need.executor in offer.executors)
        and (not need.commands or offer.sandbox != "unavailable")
        and (not need.sandbox or offer.sandbox in CONFINED)
    )


def choose(
    need: Need, offers: Sequence[Offer], usage: Mapping[str, Usage], policy: PlacementPolicy = "first-fit"
) -> str | None:
    """The node the policy picks among those that fit (offers sorted by name), or None when none fits."""
    if policy == "first-fit":
        return next((o.name for o in offers if fits(need, o, usage.get(o.name, Usage()))), None)
    fitting = [o for o in offers if fits(need, o, usage.get(o.name, Usage()))]
    if not fitting:
        return None

    def free(offer: Offer) -> int:
        return offer.slots - usage.get(offer.name, Usage()).slots

    if policy == "spread":
        return min(fitting, key=lambda o: (-free(o), o.name)).name
    speed = (lambda o: o.speeds.get(need.model)) if need.model else (lambda o: None)
    return min(fitting, key=lambda o: (speed(o) is None, -(speed(o) or 0.0), -free(o), o.name)).name


class Placer:
    """One placement pass: places tasks one after another, each on the node its policy chooses among those that fit.

    NB: for 10,000 tasks x 1,000 nodes a plain scan is too slow in Python, so two things keep it near-linear:
    nodes are indexed by accelerator and dropped from the index when full, and a need that found no node is
    remembered for the rest of the pass (usage only grows within a pass, so it cannot fit later either).
    """

    def __init__(self, offers: Iterable[Offer], usage: Mapping[str, Usage], *, policy: PlacementPolicy = "first-fit"):
        self.policy = policy
        ordered = sorted(offers, key=lambda offer: offer.name)
        self.usage = {
            offer.name: Usage(usage.get(offer.name, Usage()).slots, usage.get(offer.name, Usage()).ram_gb)
            for offer in ordered
        }
        self.offers = {offer.name: offer for offer in ordered}
        self._candidates: dict[str, list[Offer]] = {"any": [o for o in ordered if self.usage[o.name].slots < o.slots]}
        for offer in self._candidates["any"]:
            self._candidates.setdefault(offer.accelerator, []).append(offer)
        self._unplaceable: set[tuple[Need, frozenset[str]]] = set()
        self._fits_when_empty: dict[Need, bool] = {}

    def place(self, need: Need, refuse: frozenset[str] = frozenset()) -> str | None:
        """The node the task goes to (its slot and RAM then taken), or None. `refuse`: accelerators the task may not
        go to now (its queue's caps on them)."""
        if (need, refuse) in self._unplaceable:
            return None
        candidates = self._candidates.get(need.accelerator, [])
        if refuse:
            candidates = [offer for offer in candidates if offer.accelerator not in refuse]
        chosen = choose(need, candidates, self.usage, self.policy)
        if chosen is None:
            self._unplaceable.add((need, refuse))
            return None
        used = self.usage[chosen]
        used.slots += 1
        used.ram_gb += need.ram_gb
        offer = self.offers[chosen]
        if used.slots >= offer.slots:
            for key in ("any", offer.accelerator):
                self._candidates[key].remove(offer)
        return chosen

    def has_capacity(self) -> bool:
        return bool(self._candidates["any"])

    def fits_when_empty(self, need: Need) -> bool:
        """Whether any node could take the task if it were idle: telling "wait for a slot" from "nothing fits"."""
        if need not in self._fits_when_empty:
            self._fits_when_empty[need] = any(fits(need, offer, Usage()) for offer in self.offers.values())
        return self._fits_when_empty[need]
