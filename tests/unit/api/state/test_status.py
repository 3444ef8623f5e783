from typing import Any

from foreman.api.state.status import needs_blocked_write, unblocked
from tests.factories import T0, task


def blocked_by(reason: str) -> dict[str, Any]:
    return {"type": "Blocked", "status": "True", "reason": reason, "message": "m", "lastTransitionTime": T0}


def blocked_condition(patch: dict[str, Any]) -> tuple[str, str]:
    (condition,) = [c for c in patch["conditions"] if c["type"] == "Blocked"]
    return condition["status"], condition["reason"]


def test_unblocking_says_the_opposite_of_what_blocked_the_task() -> None:
    """`pending(None)` wrote DependenciesMet even when NoFittingNode had blocked the task."""
    no_fit = task("x", conditions=[blocked_by("NoFittingNode")])
    assert needs_blocked_write(no_fit, None)
    assert blocked_condition(unblocked(no_fit, T0)) == ("False", "FittingNodeAvailable")
    waited = task("y", conditions=[blocked_by("WaitingForDependencies")])
    assert blocked_condition(unblocked(waited, T0)) == ("False", "DependenciesMet")


def test_an_unchanged_block_costs_no_write() -> None:
    waiting = task("x", conditions=[blocked_by("NoFittingNode")])
    assert not needs_blocked_write(waiting, ("NoFittingNode", "m"))
    assert needs_blocked_write(waiting, ("NoFittingNode", "another"))
    assert not needs_blocked_write(task("never"), None)
