"""TaskQueue (foreman.dev/v1alpha1, cluster-scoped): a share of the fleet for the tasks of some namespaces.

The controller places waiting tasks queue by queue, by weighted fair share (`foreman.controller.queues`). A task names
its queue with `spec.queue`, or falls into the first queue (by name) whose `namespaceSelector` selects its namespace,
or into the default queue: weight 1, no cap, unless a TaskQueue named `default` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from foreman.api.models.base import Model, Resource, Rule
from foreman.api.models.nodes import Accelerator

DEFAULT_QUEUE = "default"
"""The queue of tasks no TaskQueue takes; a TaskQueue of this name sets its weight and caps."""


def labels_of(namespace: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """A Namespace object's name and labels (what a namespaceSelector reads)."""
    return namespace["metadata"]["name"], dict(namespace["metadata"].get("labels") or {})


SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class SelectorRequirement(Model):
    key: str = Field(min_length=1, max_length=317)
    operator: SelectorOperator
    values: list[str] = Field(default_factory=list)
    """Needed by In and NotIn, refused by Exists and DoesNotExist (as Kubernetes' own selectors)."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
            message="namespaceSelector.matchExpressions.values: In and NotIn need values, Exists and DoesNotExist "
            "take none",
            holds=lambda requirement: (requirement.operator in ("In", "NotIn")) == bool(requirement.values),
        ),
    )


class LabelSelector(Model):
    """The Kubernetes label selector: every `matchLabels` pair and every expression must hold; empty selects all."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list)

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.match_labels.items()) and all(
            _holds(requirement, labels) for requirement in self.match_expressions
        )


def _holds(requirement: SelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    if requirement.operator == "Exists":
        return present
    if requirement.operator == "DoesNotExist":
        return not present
    inside = present and labels[requirement.key] in requirement.values
    return inside if requirement.operator == "In" else not inside


class TaskQueueSpec(Model):
    namespace_selector: LabelSelector | None = None
    """Namespaces whose tasks this queue takes (`{}`: every namespace); none: only tasks naming it in spec.queue."""
    weight: float = Field(default=1.0, gt=0, le=1000)
    """Share of the fleet under contention, relative to the other queues' weights (the default queue has 1)."""
    max_running: int | None = Field(default=None, ge=0)
    """Hard cap on the queue's tasks Scheduled or Running across the fleet; none: no cap."""
    max_running_per_accelerator: dict[Accelerator, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    """Hard caps by the node's accelerator, e.g. {cuda: 4}."""
    cold_start_delay: float | None = Field(default=None, ge=0, le=3600)
    """Policy `warm`: seconds a task waits for a node with its model loaded to free a slot before it starts cold
    elsewhere (its Agent's coldStartDelay wins); none: the controller's default."""


class TaskQueueStatus(Model):
    """Counts for kubectl's columns, written by the controller when they change (at most every 5 s)."""

    running: int = Field(default=0, ge=0)
    """Tasks of the queue Scheduled or Running."""
    pending: int = Field(default=0, ge=0)
    """Tasks of the queue waiting to be placed (dependencies met)."""
    share: float = Field(default=0, ge=0, le=1)
    """Its part of all the tasks running in the fleet."""


class TaskQueue(Resource):
    plural: ClassVar[str] = "taskqueues"
    singular: ClassVar[str] = "taskqueue"
    short_name: ClassVar[str] = "tq"
    namespaced: ClassVar[bool] = False

    kind: Literal["TaskQueue"] = "TaskQueue"
    spec: TaskQueueSpec = TaskQueueSpec()
    status: TaskQueueStatus = TaskQueueStatus()
