"""Public import path of the planner SDK (README, examples/): the names of `foreman.api.tooling.sdk`, re-exported;
Foreman's own code imports that module instead."""

from foreman.api.tooling.sdk import (
    AlreadyFinished,
    AlreadyTriggered,
    DependencyCycleError,
    ForemanClient,
    MissingDependencyError,
    NotOurs,
    TaskFailed,
    WaitTimeout,
    creation_order,
)

__all__ = [
    "AlreadyFinished",
    "AlreadyTriggered",
    "DependencyCycleError",
    "ForemanClient",
    "MissingDependencyError",
    "NotOurs",
    "TaskFailed",
    "WaitTimeout",
    "creation_order",
]
