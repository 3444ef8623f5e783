"""Sub-tasks: what an Agent's tasks may create on the fleet while they run (children and schedules), and its bounds.

An Agent without `subtasks` creates nothing: the tools `submit_task`, `wait_for_tasks`, `list_my_tasks` and
`cancel_my_task` are offered only when `agents` names at least one Agent, and `set_schedule` only when
`maxSchedules` is above 0. The bounds are enforced by the apiserver (admission) and the controller (counts), not by
the worker's good will.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from foreman.api.models.base import GROUP, Model

PARENT_LABEL = f"{GROUP}/parent"
"""On what a task's agent creates (children, schedules): the creating task's name (a child also has an
ownerReference to it, by uid)."""
CREATED_BY_LABEL = f"{GROUP}/created-by"
CREATED_BY_AGENT = "agent"
"""`foreman.dev/created-by: agent` on what a task's agent creates (`submit_task`, `set_schedule`), never on what
people make: a selector tells them apart."""
DEPTH_LABEL = f"{GROUP}/depth"
"""On a child: its level below the task people made (1: a child of it, 2: a grandchild)."""
CREATOR_NODE_LABEL = f"{GROUP}/creator-node"
"""On a child: the node whose worker created it; the admission policy holds it to the worker's own node, the
controller to the node its parent ran on."""
AGENT_EXECUTOR = "agent"
"""The executor of every task an agent creates (its children, its schedules' tasks)."""
MAX_PROMPT = 65536
"""Characters of a prompt an agent writes for another task (a child's, a schedule's)."""
MAX_PAYLOAD_BYTES = 256 * 1024
"""A child's payload (prompt and inputs) as JSON, at most: a task is an etcd object, not a file transfer."""

AgentName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
DEFAULT_MAX_CHILDREN = 10
DEFAULT_MAX_DEPTH = 2
DEFAULT_MIN_SCHEDULE_INTERVAL = 3600


class SubtaskPolicy(Model):
    """An Agent's `spec.subtasks`."""

    agents: list[AgentName] = Field(default_factory=list, max_length=64)
    """Agents (in the task's namespace) a child may run with; empty: the task creates no children."""
    max_children: int = Field(default=DEFAULT_MAX_CHILDREN, ge=0, le=1000)
    """Children one task may create in all (cancelled ones count)."""
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=1, le=10)
    """Levels of children below a task that people made: 2 lets a child have children, whose own are refused."""
    max_schedules: int = Field(default=0, ge=0, le=100)
    """TaskSchedules one task may create; 0: no `set_schedule` tool."""
    min_schedule_interval_seconds: int = Field(default=DEFAULT_MIN_SCHEDULE_INTERVAL, ge=60, le=31_622_400)
    """Shortest time between two firings of a schedule an agent makes (default hourly)."""
