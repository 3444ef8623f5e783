"""Every resource Foreman defines (one CRD each): the CRDs are generated from this list, and the HTTP layer knows the
path of each from it."""

from __future__ import annotations

from foreman.api.models.agents import Agent
from foreman.api.models.base import Resource
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask

RESOURCES: tuple[type[Resource], ...] = (AgenticTask, FleetNode, TaskSchedule, Agent, TaskQueue)
