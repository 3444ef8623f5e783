"""Placement of Pending tasks onto FleetNodes, as pure functions.

Slots and RAM in use come from the tasks the controller itself sees Scheduled or Running on each node, never from a
field nothing writes. A node fits a task when its accelerator, free RAM, labels, executors and model do; among the
fitting nodes the policy chooses: `first-fit` the first by name, `spread` the one with the most free slots (ties by
name), `fastest` the one with the highest measured tokens per second for the task's model (unknown speeds last, ties
by free slots, then name), `warm` the one where the task's model costs least to have loaded (controller/warmth.py;
ties by name, as first-fit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from foreman.api.models.gates import allowed
from foreman.api.models.nodes import AcceleratorRequest
from foreman.controller.warmth import NodeModels, cost

CONFINED = ("bubblewrap", "seatbelt")
PlacementPolicy = Literal["warm", "first-fit", "spread", "fastest"]
POLICIES: tuple[PlacementPolicy, ...] = ("warm", "first-fit", "spread", "fastest")


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
    gates: tuple[tuple[str, ...], ...] = ()
    """Its verify gates' argvs: the node must allow each (an argv prefix of its allowed commands)."""


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
    allow_commands: tuple[tuple[str, ...], ...] | None = None
    """The argv prefixes its agents may run; None: not said."""
    warmth: NodeModels = field(default_factory=NodeModels)
    """Which models are loaded, their sizes and load times, and the memory they load into (policy `warm`)."""

    def context_for(self, model: str | None) -> int:
        """The context a task gets here: its model's where the node knows it, else the node's largest."""
        known = self.models.get(model) if model else None
        return known if known is not None else self.context_tokens


@dataclass
class Usage:
    slots: int = 0
    ram_gb: float = 0.0
    models: dict[str, int] = field(default_factory=dict)
    """Tasks holding a slot, by the model they run with: loaded (or loading) there, and not to be evicted."""


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
        and (not need.gates or allows_gates(need, offer))
    )


def allows_gates(need: Need, offer: Offer) -> bool:
    """Whether the node runs commands and allows every gate's argv (a node that does not say allows none)."""
    prefixes = offer.allow_commands
    runs = offer.sandbox not in (None, "unavailable")
    return runs and prefixes is not None and all(allowed(argv, prefixes) for argv in need.gates)


def load_cost(need: Need, offer: Offer, usage: Usage, queued: Mapping[str, int]) -> float | None:
    """Seconds of model loading placing the task there causes (0: no model, or it is loaded); None: its model cannot
    fit in the node's model memory next to those its tasks run with."""
    if need.model is None or need.model not in offer.warmth.served:
        return 0.0  # NB: a model the node lists but says nothing of (a `--model` name): nothing to count
    return cost(need.model, offer.warmth, usage.models, queued)


def choose(
    need: Need,
    offers: Sequence[Offer],
    usage: Mapping[str, Usage],
    policy: PlacementPolicy = "first-fit",
    *,
    queued: Mapping[str, int] | None = None,
    warm_only: bool = False,
) -> str | None:
    """The node the policy picks among those that fit (offers sorted by name), or None when none fits. `queued`
    (policy `warm`): the tasks waiting, by model (what evicting a model costs); `warm_only`: only a node that has
    the model loaded (cost 0)."""
    if policy == "first-fit" or (policy == "warm" and need.model is None):
        return next((o.name for o in offers if fits(need, o, usage.get(o.name, Usage()))), None)
    fitting = [o for o in offers if fits(need, o, usage.get(o.name, Usage()))]
    if not fitting:
        return None
    if policy == "warm":
        costs = (
            (c, o.name)
            for o in fitting
            if (c := load_cost(need, o, usage.get(o.name, Usage()), queued or {})) is not None
        )
        best = min(costs, default=None)
        return best[1] if best is not None and (not warm_only or best[0] == 0) else None

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

    def __init__(
        self,
        offers: Iterable[Offer],
        usage: Mapping[str, Usage],
        *,
        policy: PlacementPolicy = "first-fit",
        queued: Mapping[str, int] | None = None,
    ):
        """`queued` (policy `warm`): the tasks waiting, by model; each one placed is taken off."""
        self.policy = policy
        self.queued = dict(queued or {})
        ordered = sorted(offers, key=lambda offer: offer.name)
        empty = Usage()
        self.usage = {
            offer.name: Usage((used := usage.get(offer.name, empty)).slots, used.ram_gb, dict(used.models))
            for offer in ordered
        }
        self.offers = {offer.name: offer for offer in ordered}
        self._candidates: dict[str, list[Offer]] = {"any": [o for o in ordered if self.usage[o.name].slots < o.slots]}
        for offer in self._candidates["any"]:
            self._candidates.setdefault(offer.accelerator, []).append(offer)
        self._unplaceable: set[tuple[Need, frozenset[str]]] = set()
        self.last_cost = 0.0
        """Policy `warm`: seconds of model loading the last placement causes (0: warm); its cold-start Event says it."""
        self._fits_when_empty: dict[Need, bool] = {}

    def place(self, need: Need, refuse: frozenset[str] = frozenset(), *, warm_only: bool = False) -> str | None:
        """The node the task goes to (its slot and RAM then taken), or None. `refuse`: accelerators the task may not
        go to now (its queue's caps on them); `warm_only`: only a node with its model loaded (policy `warm`)."""
        if (need, refuse) in self._unplaceable:
            return None
        candidates = self._candidates.get(need.accelerator, [])
        if refuse:
            candidates = [offer for offer in candidates if offer.accelerator not in refuse]
        chosen = choose(need, candidates, self.usage, self.policy, queued=self.queued, warm_only=warm_only)
        if chosen is None:
            if not warm_only:  # NB: a node may turn warm within the pass (a task placed there with the model)
                self._unplaceable.add((need, refuse))
            return None
        used = self.usage[chosen]
        self.last_cost = (
            load_cost(need, self.offers[chosen], used, self.queued) or 0.0 if self.policy == "warm" else 0.0
        )
        used.slots += 1
        used.ram_gb += need.ram_gb
        if need.model is not None:
            used.models[need.model] = used.models.get(need.model, 0) + 1
            if self.queued.get(need.model):
                self.queued[need.model] -= 1
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

    def warm_somewhere(self, need: Need, *, besides: str | None = None) -> bool:
        """Whether a node (`besides` that one) that would take the task if it had a free slot has its model loaded:
        worth a short wait."""
        if need.model is None:
            return False
        return any(
            fits(need, offer, Usage(0, 0.0, used.models))
            and need.model in offer.warmth.served
            and offer.warmth.served[need.model] in offer.warmth.loaded(used.models)
            for offer, used in ((o, self.usage[o.name]) for o in self.offers.values() if o.name != besides)
        )
