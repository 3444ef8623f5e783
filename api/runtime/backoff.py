"""The one backoff formula of both daemons: the work queue's per-key retries, the watches, the task retries."""

from __future__ import annotations


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Exponential backoff: `base` after no failure, doubled with each one, never more than `cap`."""
    return float(min(cap, base * 2**failures))
