"""The fleet as the controller sees it, listed once into the controller's own `Cache`, so that `foreman get tasks`,
`foreman describe task` and `foreman queue list` explain waiting tasks with the controller's functions
(`foreman.controller.waiting.line_up`), never with a copy of them.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from foreman.api.http.client import Kube
from foreman.api.http.errors import Forbidden, NotFound, NotServed
from foreman.api.models.agents import Agent
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue, labels_of
from foreman.api.models.tasks import AgenticTask
from foreman.controller.cache import Cache
from foreman.controller.waiting import fleet_of

UNREADABLE = (Forbidden, NotFound, NotServed)
"""What a user's credentials or an older install may answer for the cluster-wide reads; the view is then narrower."""


async def fleet_view(kube: Kube, namespace: str | None, now: datetime) -> Cache:
    """Tasks of every namespace where readable (a queue's line spans namespaces), else of `namespace`; the nodes,
    queues, namespace labels and Agents placement reads."""
    try:
        tasks = (await kube.list(AgenticTask)).items
    except Forbidden:
        tasks = (await kube.list(AgenticTask, namespace=namespace)).items
    nodes = (await kube.list(FleetNode)).items
    queues: list[TaskQueue] = []
    labels: dict[str, dict[str, str]] = {}
    agents: list[Agent] = []
    with contextlib.suppress(*UNREADABLE):
        queues = (await kube.list(TaskQueue)).items
    with contextlib.suppress(*UNREADABLE):
        labels = dict(map(labels_of, await kube.list_raw("v1", "Namespace")))
    with contextlib.suppress(*UNREADABLE):
        agents = (await kube.list(Agent, namespace=namespace)).items
    return fleet_of(tasks, nodes, queues, labels, agents, now)
