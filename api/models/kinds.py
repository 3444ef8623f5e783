"""Every resource Foreman defines (one CRD each): the CRDs are generated from this list, and the HTTP layer knows the
path of each from it."""

from __future__ import annotations

from foreman.api.models.agents import Agent
from foreman.api.models.queues import TaskQueue
from foreman.api.models.resources import AgenticTask, FleetNode, Resource
from foreman.api.models.schedules import TaskSchedule

RESOURCES: tuple[type[Resource], ...] = (AgenticTask, FleetNode, TaskSchedule, Agent, TaskQueue)
