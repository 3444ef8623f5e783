"""What goes wrong in an agent's work, as the loop tells it apart."""

from __future__ import annotations


class ToolError(Exception):
    """A tool could not do what the model asked; the message goes back to the model as the tool's result."""


class WorkspaceError(Exception):
    """The workspace could not be set up (clone failed, bad branch name): the task fails with this message."""
