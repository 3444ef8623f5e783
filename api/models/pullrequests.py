"""Pull requests: when an agent task opens one (an Agent's `pullRequest`, a task's overriding it), and what its
result envelope records of the one it opened or updated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from foreman.api.models.base import Model

FAIL_VERDICTS = frozenset({"NO-GO", "GATE-FAIL"})
"""Verdicts of work that did not pass but may be worth a look: a draft pull request when `onFail: draft`."""


class PullRequestPolicy(Model):
    """`pullRequest` on an Agent or a task (the task's fields win, each on its own). A pull request needs a forge in
    the worker's config (`executors.agent.forge`) and a task with a `repo` on it."""

    on_go: Literal["open", "none"] | None = None
    """On GO: open the pull request for the task's branch, or update the one open for it (default `open`)."""
    on_fail: Literal["draft", "none"] | None = None
    """On NO-GO or GATE-FAIL: push the branch and open (or update) a draft pull request (default `none`)."""

    def over(self, below: PullRequestPolicy | None) -> PullRequestPolicy:
        """This policy with what it leaves unsaid taken from `below` (a task's over its Agent's)."""
        if below is None:
            return self
        return PullRequestPolicy(
            on_go=self.on_go if self.on_go is not None else below.on_go,
            on_fail=self.on_fail if self.on_fail is not None else below.on_fail,
        )

    def wants(self, verdict: str) -> Literal["open", "draft"] | None:
        """What the verdict asks of the forge: an open pull request, a draft one, or none."""
        if verdict == "GO":
            return "open" if (self.on_go or "open") == "open" else None
        if verdict in FAIL_VERDICTS:
            return "draft" if self.on_fail == "draft" else None
        return None


class PullRequestRecord(Model):
    """The envelope's `pullRequest`: the pull request the task opened or updated, as the forge answered."""

    url: str = Field(max_length=2048)
    number: int = Field(ge=1)
    draft: bool = False
