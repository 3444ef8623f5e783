"""The review step: a second agent (`spec.review: {agentRef}`) that judges a GO whose gates passed, placed like a
task by its own Agent's model: what the task carries to it (what its envelope records of the review, `ReviewRecord`, is
the envelope's)."""

from __future__ import annotations

from pydantic import Field

from foreman.api.models.base import Model, ObjectName
from foreman.api.models.envelope import MAX_ATTEMPTS_KEPT, Attempt, ChildRecord
from foreman.api.models.gates import GateResult
from foreman.api.models.pullrequests import PullRequestPolicy

MAX_DIFF = 64 * 1024
"""Diff bytes the reviewer is shown at most (a task is stored whole in etcd)."""
MAX_SUMMARY = 16 * 1024


class ReviewRef(Model):
    """`review` on an Agent or a task (the task's wins): the Agent that reviews its GO."""

    agent_ref: ObjectName
    """Name of the reviewer Agent in the task's namespace (its model, prompt, tools and turns)."""


class ReviewStage(Model):
    """`status.review`: written when the agent's GO passed its gates and a review follows; the task is then Pending
    for the reviewer's Agent, and this is what the reviewer is shown and what the final envelope keeps of the work."""

    agent_ref: ObjectName
    branch: str | None = Field(default=None, max_length=253)
    commit: str | None = Field(default=None, max_length=64)
    """The commit the agent made (pushed when the worker pushes: the reviewer's checkout is that branch)."""
    changed_files: list[str] = Field(default_factory=list, max_length=1000)
    diff: str = Field(default="", max_length=MAX_DIFF + 64)
    summary: str = Field(default="", max_length=MAX_SUMMARY)
    """What the agent said of its work (submit_result's summary)."""
    model: str | None = Field(default=None, max_length=253)
    """The model the agent ran with."""
    gates: list[GateResult] = Field(default_factory=list, max_length=32)
    fix_rounds: int = Field(default=0, ge=0)
    pull_request: PullRequestPolicy = PullRequestPolicy()
    """The task's pull request policy, as its own Agent resolved it (the reviewer's Agent does not change it)."""
    children: list[ChildRecord] = Field(default_factory=list, max_length=1000)
    """The tasks the work created (`submit_task`), each as it stood when the work ended: the final envelope's
    `children` (the reviewer creates none, and is lent nothing to read them with)."""
    work_attempts: list[Attempt] = Field(default_factory=list, max_length=MAX_ATTEMPTS_KEPT)
    """The work's attempts, their number, node and times only, as the move that began the review ended them: the only
    ones whose nodes made the task's children and schedules (api/lifecycle/subtasks.ran_on). No worker changes the
    stage once written (admission: manifests.worker_admission), as it may the attempt history of a task it holds.
    Empty in a stage an older version wrote: then no attempt counts."""
