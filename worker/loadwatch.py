"""What the worker advertises of its models' loading (pure; the offering's probes are the shell, worker/offering.py):
which are loaded, smoothed, and how long a load takes on this node, measured.

Loaded, smoothed: a model's advertised state changes only once the server has said the new state on `STEADY_PROBES`
probes in a row (to loaded and to unloaded alike), so a list that flaps at every probe moves nothing; `FLAP_CHANGES`
changes of what the server says within `FLAP_WINDOW_S` is flapping, and said on the node.

Load time, measured: a task here began with the model while the server said it was not loaded (`want`); a later probe
still said not loaded (so the load was not done already), and a steady run of probes then says loaded: the load took
from the want to between the last probe that said not loaded and the first that said loaded (their midpoint; the
offering probes every `LOADING_PROBE_S` while a load is under way). Smoothed as a moving average; a measurement that
cannot be believed (api/lifecycle/modelload.py) is dropped and said. Until one is measured, the estimate from its size.

Sizes are clamped to the node's model memory (a model bigger than it cannot be loaded as advertised), and said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from foreman.api.lifecycle import reasons
from foreman.api.lifecycle.modelload import MAX_LOAD_SECONDS, estimated_load_seconds, sane_load_seconds
from foreman.api.models.nodes import ModelOffer

STEADY_PROBES = 2
"""Probes in a row that must say a model's new state before it is advertised."""
FLAP_WINDOW_S = 60.0
FLAP_CHANGES = 4
"""Changes within the window that make a model's loaded state flapping."""
WEIGHT = 0.3
"""Of each new load measurement: one slow load (a busy disk) does not swing the estimate."""
LOADING_PROBE_S = 1.0
"""How often the offering asks while a load is under way: the measurement's resolution."""


@dataclass(frozen=True)
class ModelWatch:
    """One model's loading, as the probes saw it (times in seconds of a monotonic clock)."""

    loaded: bool | None = None
    """As advertised: what the server said, once steady (None: it says nothing of loading)."""
    seen: bool | None = None
    """What the last probe said."""
    streak: int = 0
    """Probes in a row that said `seen`."""
    streak_since: float = 0.0
    """When the first of them was."""
    unloaded_at: float | None = None
    """The last probe that said not loaded."""
    wanted_at: float | None = None
    """When a task here began with it while the server said it was not loaded: a load to measure."""
    load_seconds: float | None = None
    """Measured and smoothed; None until a load was measured."""
    changes: tuple[float, ...] = ()
    """When what the server says changed, within the flap window."""
    rejected: float | None = None
    """The last measurement dropped as unbelievable (until a good one)."""

    @property
    def flapping(self) -> bool:
        return len(self.changes) >= FLAP_CHANGES

    @property
    def loading(self) -> bool:
        """A load this node waits for: the offering probes often, to measure it."""
        return self.wanted_at is not None and self.seen is False


def observe(watch: ModelWatch, seen: bool | None, now: float) -> ModelWatch:
    """A probe said `seen` (None: the server says nothing of loading) at `now`."""
    if seen is None:
        return replace(watch, loaded=None, seen=None, streak=0, wanted_at=None, changes=())
    same = seen == watch.seen
    streak = watch.streak + 1 if same else 1
    changed = watch.seen is not None and not same
    changes = tuple(t for t in (*watch.changes, *([now] if changed else [])) if now - FLAP_WINDOW_S < t <= now)
    steady = watch.loaded is None or streak >= STEADY_PROBES
    loaded = seen if steady else watch.loaded
    update = replace(
        watch,
        loaded=loaded,
        seen=seen,
        streak=streak,
        streak_since=watch.streak_since if same else now,
        unloaded_at=now if not seen else watch.unloaded_at,
        changes=changes,
    )
    wanted = watch.wanted_at
    if wanted is not None and now - wanted > MAX_LOAD_SECONDS:
        return replace(update, wanted_at=None)  # NB: that load never came (its task failed); nothing to measure
    if not (watch.loaded is False and loaded is True and wanted is not None):
        return update
    if watch.unloaded_at is None or watch.unloaded_at < wanted:
        return replace(update, wanted_at=None)  # loaded already when wanted, as far as the probes can tell
    return measured(replace(update, wanted_at=None), (watch.unloaded_at + update.streak_since) / 2 - wanted)


def measured(watch: ModelWatch, sample: float) -> ModelWatch:
    """A load took `sample` seconds: into the moving average, or dropped where it cannot be believed."""
    if not sane_load_seconds(sample):
        return replace(watch, rejected=sample)
    previous = watch.load_seconds
    smoothed = sample if previous is None else previous + WEIGHT * (sample - previous)
    return replace(watch, load_seconds=round(smoothed, 2), rejected=None)


def want(watch: ModelWatch, now: float) -> ModelWatch:
    """A task here begins with the model: where the server says it is not loaded, the load to measure starts now."""
    if watch.seen is False and watch.wanted_at is None:
        return replace(watch, wanted_at=now)
    return watch


@dataclass(frozen=True)
class Problem:
    """Something wrong in what the node would advertise of a model, put right and said (condition ModelReportsValid)."""

    reason: str
    message: str


def advertise(
    offers: tuple[ModelOffer, ...], watches: Mapping[str, ModelWatch], memory_gb: float | None
) -> tuple[tuple[ModelOffer, ...], list[Problem]]:
    """The offers as the node advertises them: loaded as smoothed, the load time measured or estimated from the
    size, the size clamped to the node's model memory; and what had to be put right."""
    problems: list[Problem] = []
    advertised = []
    for offer in offers:
        watch = watches.get(offer.name, ModelWatch())
        size = offer.size_gb
        if size is not None and memory_gb is not None and size > memory_gb:
            problems.append(Problem(reasons.MODEL_LARGER_THAN_MEMORY,
                                    f"{offer.name} is {size:g} GB, more than the node's {memory_gb:g} GB of model "
                                    f"memory: counted as {memory_gb:g} GB"))  # fmt: skip
            size = memory_gb
        if watch.flapping:
            problems.append(Problem(reasons.LOADED_LIST_FLAPPING,
                                    f"{offer.name} went in and out of memory {len(watch.changes)} times in "
                                    f"{FLAP_WINDOW_S:g} s: advertised {'loaded' if watch.loaded else 'not loaded'} "
                                    f"until it holds for {STEADY_PROBES} probes"))  # fmt: skip
        if watch.rejected is not None:
            problems.append(Problem(reasons.LOAD_TIME_OUT_OF_RANGE,
                                    f"a load of {offer.name} measured {watch.rejected:g} s: not believed (0 to "
                                    f"{MAX_LOAD_SECONDS:g} s)"))  # fmt: skip
        estimate = round(estimated_load_seconds(size), 2) if size is not None else None
        loaded = watch.loaded if offer.loaded is not None and watch.loaded is not None else offer.loaded
        load = estimate if watch.load_seconds is None else watch.load_seconds
        advertised.append(offer.model_copy(update={"size_gb": size, "loaded": loaded, "load_seconds": load}))
    return tuple(advertised), problems


def reports(problems: list[Problem]) -> tuple[bool, str, str]:
    """Condition ModelReportsValid: (status, reason, message), the first problem's reason, every problem's message."""
    if not problems:
        return True, reasons.MODELS_AS_SERVED, "sizes, load times and loaded models as the server says"
    return False, problems[0].reason, "; ".join(problem.message for problem in problems)
