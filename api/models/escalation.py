"""Escalation to a bigger model: an Agent's ladder of models, and where a task stands on it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from foreman.api.models.base import Model

MAX_LADDER = 8
ModelName = Annotated[str, Field(min_length=1, max_length=253)]
Ladder = Annotated[list[ModelName], Field(max_length=MAX_LADDER)]
"""Models from small to large: an attempt that fails in a way a bigger model may not (no tool call, out of turns or
context, GATE-FAIL) goes back to Pending for the next one."""
MAX_PREVIOUS = 4096


class Escalation(Model):
    """Where a task stands on its ladder, written when an attempt sent it to the next model: the model the next
    attempts run with (placement needs it like any task's model) and what the next attempt is told."""

    model: ModelName
    step: int = Field(ge=0, lt=MAX_LADDER)
    """The model's index on the ladder."""
    previous: str = Field(default="", max_length=MAX_PREVIOUS)
    """A short summary of the attempt that escalated (its failure, last gate failure, changed files): the next
    attempt's first message carries it."""
