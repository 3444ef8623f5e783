"""The cost of placing a task on a node, for policy `warm`: seconds of model loading the placement causes.

0 where the node has the task's model loaded (or a task there already runs with it); else the model's load time on
that node, plus, where the node's model memory cannot hold it next to the loaded ones, the cost to the tasks queued
for the models it must evict (each of them loads its model again). A model cannot be evicted while a task on the
node runs with it, so a node where the model cannot fit next to those is no place for the task at all (None).

Bad input is clamped, never trusted: a size above the node's memory is the memory, a load time negative or absurd
(above `MAX_LOAD_SECONDS`, api/lifecycle/modelload.py) is estimated from the size instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from foreman.api.lifecycle.modelload import estimated_load_seconds, sane_load_seconds

UNKNOWN_SIZE_GB = 4.0
"""The size assumed for a model whose server says none: a common 7-8B model at 4 bits."""


@dataclass(frozen=True)
class ModelOnNode:
    """One model as a node advertises it (under its served name)."""

    size_gb: float | None = None
    load_seconds: float | None = None
    loaded: bool = False


@dataclass(frozen=True)
class NodeModels:
    """What a node says of its models: by served name, aliases mapped to it, and the memory they load into."""

    models: Mapping[str, ModelOnNode] = field(default_factory=dict)
    served: Mapping[str, str] = field(default_factory=dict)
    """Every name and alias -> the served name."""
    memory_gb: float | None = None
    """None: not said; then any model is taken to fit."""

    def size_of(self, model: str) -> float:
        """Its size, clamped to the node's memory (a bigger one cannot be loaded as advertised: the node's word on
        memory wins)."""
        size = self.models[model].size_gb
        size = UNKNOWN_SIZE_GB if size is None or not math.isfinite(size) or size < 0 else size
        return min(size, self.memory_gb) if self.memory_gb is not None else size

    def load_seconds(self, model: str) -> float:
        """Its measured load time where sane, else one estimated from its size."""
        measured = self.models[model].load_seconds
        if sane_load_seconds(measured):
            return measured
        return estimated_load_seconds(self.size_of(model))

    def loaded(self, in_use: Mapping[str, int]) -> set[str]:
        """Served names loaded now: as advertised, and those tasks on the node run with (loaded, or loading)."""
        running = {self.served[name] for name, count in in_use.items() if count and name in self.served}
        return {name for name, model in self.models.items() if model.loaded} | running


def cost(model: str, node: NodeModels, in_use: Mapping[str, int], queued: Mapping[str, int]) -> float | None:
    """Seconds of loading that placing a task for `model` (a name or alias the node serves) on `node` causes; None
    where it cannot fit next to the models its tasks run with. `in_use`: tasks holding a slot there, by model name;
    `queued`: tasks waiting, by the model name they ask for."""
    served = node.served[model]
    loaded = node.loaded(in_use)
    if served in loaded:
        return 0.0
    load = node.load_seconds(served)
    if node.memory_gb is None:
        return load
    pinned = {node.served[name] for name, count in in_use.items() if count and name in node.served}
    free = node.memory_gb - sum(node.size_of(name) for name in loaded)
    need = node.size_of(served) - free
    if need <= 0:
        return load
    if node.size_of(served) > node.memory_gb - sum(node.size_of(name) for name in pinned):
        return None
    # NB: evict the models whose queued tasks lose least first (each of them must load it again), then the smallest
    # loss per GB freed; greedy, as the server's own LRU is not ours to choose, but a fair estimate of the harm
    evictable = sorted(loaded - pinned, key=lambda name: (_harm(name, node, queued), -node.size_of(name), name))
    harm = 0.0
    for name in evictable:
        if need <= 0:
            break
        harm += _harm(name, node, queued)
        need -= node.size_of(name)
    return load + harm


def _harm(model: str, node: NodeModels, queued: Mapping[str, int]) -> float:
    waiting = sum(count for name, count in queued.items() if node.served.get(name) == model)
    return waiting * node.load_seconds(model)
