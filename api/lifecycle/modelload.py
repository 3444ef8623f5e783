"""How long loading a model takes, where nobody measured it, and what a measurement may say (pure; the worker's
advertised loadSeconds and the controller's placement cost read the same rules)."""

from __future__ import annotations

import math
from typing import Final, TypeGuard

DISK_GB_PER_S: Final = 1.0
"""Assumed read speed of a node's disk when it never measured a load: a consumer NVMe SSD, roughly."""
LOAD_OVERHEAD_S: Final = 2.0
"""What any load costs beside reading the weights (starting the runner, allocating memory)."""
MAX_LOAD_SECONDS: Final = 3600.0
"""A load time above this is a broken measurement, not a slow disk."""


def estimated_load_seconds(size_gb: float) -> float:
    """A model's load time from its size: the overhead plus reading its weights (at most the believable)."""
    return min(LOAD_OVERHEAD_S + size_gb / DISK_GB_PER_S, MAX_LOAD_SECONDS)


def sane_load_seconds(seconds: float | None) -> TypeGuard[float]:
    """Whether a load time can be believed: a number, not negative, not absurd."""
    return seconds is not None and math.isfinite(seconds) and 0 <= seconds <= MAX_LOAD_SECONDS
