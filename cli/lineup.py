"""The fleet as the controller sees it, listed once into the controller's own `Cache`, so that `foreman get tasks`,
`foreman describe task` and `foreman queue list` explain waiting tasks with the controller's functions
(`foreman.controller.waiting.line_up`), never with a copy of them.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from foreman.api.http.errors import Forbidden, NotFound, NotServed
from foreman.api.http.kube import Kube
from foreman.api.models.agents import Agent
from foreman.api.models.queues import TaskQueue
from foreman.api.models.resources import AgenticTask, FleetNode
from foreman.controller.cache import Cache

UNREADABLE = (Forbidden, NotFound, NotServed)
"""What a user's credentials or an older install may answer for the cluster-wide reads; the view is then narrower."""


async def fleet_view(kube: Kube, namespace: str | None, now: datetime) -> Cache:
    """Tasks of every namespace where readable (a queue's line spans namespaces), else of `namespace`; the nodes,
    queues, namespace labels and Agents placement reads."""
    cache = Cache()
    try:
        tasks = (await kube.list(AgenticTask)).items
    except Forbidden:
        tasks = (await kube.list(AgenticTask, namespace=namespace)).items
    cache.replace_tasks(tasks)
    cache.replace_nodes((await kube.list(FleetNode)).items, now)
    with contextlib.suppress(*UNREADABLE):
        cache.replace_queues((await kube.list(TaskQueue)).items)
    with contextlib.suppress(*UNREADABLE):
        namespaces = await kube.list_raw("v1", "Namespace")
        cache.replace_namespace_labels(
            {ns["metadata"]["name"]: ns["metadata"].get("labels") or {} for ns in namespaces}
        )
    with contextlib.suppress(*UNREADABLE):
        agents = (await kube.list(Agent, namespace=None if namespace is None else namespace)).items
        cache.replace_agents((agent.namespace or "", agent.name, agent.spec.model) for agent in agents)
    return cache
