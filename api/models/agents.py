"""Agent (foreman.dev/v1alpha1): a reusable definition of an LLM agent that `agent`-executor tasks name.

The agent runs on the node's own OpenAI-compatible inference server (llama.cpp, Ollama, vLLM, mlx, LM Studio); what
the node offers (endpoint, commands the `run` tool may execute) is the worker's configuration, never the Agent's or
the task's: an Agent says *how* to work, the node says *what is allowed*.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from foreman.api.models.base import Model, Resource
from foreman.api.models.escalation import Ladder
from foreman.api.models.gates import DEFAULT_MAX_FIX_ROUNDS, MAX_FIX_ROUNDS, Gates
from foreman.api.models.notify import Notify
from foreman.api.models.pullrequests import PullRequestPolicy
from foreman.api.models.review import ReviewRef
from foreman.api.models.subtasks import SubtaskPolicy

ToolName = Literal["list_files", "read_file", "write_file", "edit_file", "grep", "run", "submit_result"]
TOOL_NAMES: tuple[ToolName, ...] = (
    "list_files",
    "read_file",
    "write_file",
    "edit_file",
    "grep",
    "run",
    "submit_result",
)
DEFAULT_TOOLS: tuple[ToolName, ...] = tuple(name for name in TOOL_NAMES if name != "run")
"""An Agent without `tools` gets every tool but `run`: executing commands is opted into, per Agent."""


class AgentSpec(Model):
    model: str | None = Field(default=None, max_length=253)
    """Model name as the node's server knows it (a task's modelRef overrides it); empty: the server's default."""
    system_prompt: str | None = Field(default=None, max_length=65536)
    """Replaces the built-in system prompt."""
    tools: list[ToolName] | None = None
    """Built-in tools the agent may call (default: all but `run`). `submit_result` is always available: it is how
    the agent ends its work."""
    max_turns: int = Field(default=30, ge=1, le=1000)
    """Model calls before the task ends INCOMPLETE (MaxTurnsExceeded)."""
    max_output_tokens: int | None = Field(default=None, ge=1)
    """max_tokens of each model call."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    turn_timeout_seconds: int = Field(default=300, ge=1, le=86400)
    """Longest silence of the server within one model call (before its first byte, or between two chunks)."""
    context_window_tokens: int | None = Field(default=None, ge=512)
    """Conversation budget: older tool results are shortened so that the history fits (estimated tokens)."""
    needs_sandbox: bool = False
    """Place its tasks only on nodes that confine commands (an Agent with `run` is never placed where no command
    can run)."""
    cold_start_delay: float | None = Field(default=None, ge=0, le=3600)
    """Policy `warm`: seconds its tasks wait for a node with their model loaded to free a slot before starting cold
    elsewhere; wins over its TaskQueue's; none: the queue's, else the controller's default."""
    pull_request: PullRequestPolicy | None = None
    """When its tasks open a pull request on the worker's forge (`onGo: open | none`, `onFail: draft | none`)."""
    inherit_upstream: bool = False
    """Its first message also says what each of the task's upstreams (dependsOn) reported: verdict and summary."""
    gates: Gates = Field(default_factory=list)
    """Run by the worker, in order, after the model's GO (a task's own `gates` replace them)."""
    max_fix_rounds: int = Field(default=DEFAULT_MAX_FIX_ROUNDS, ge=0, le=MAX_FIX_ROUNDS)
    """Times a failing gate's output goes back to the model to fix, before the verdict is GATE-FAIL (also bounded by
    maxTurns)."""
    notify: Notify
    """Where its tasks' results go: the default of every task naming it that has no notify list of its own."""
    escalation: Ladder = Field(default_factory=list)
    """Models from small to large: on NoToolCall, MaxTurnsExceeded, ContextExceeded or GATE-FAIL the task goes back
    to Pending for the next one (not counted against its retries); the last one's outcome is the task's."""
    review: ReviewRef | None = None
    """The Agent that reviews its tasks' GO once the gates passed (placed by that Agent's model); the reviewer's
    GO or NO-GO is the task's verdict, and anything but a clear GO is NO-GO."""

    subtasks: SubtaskPolicy | None = None
    """What its tasks may create while they run: children (AgenticTasks for the Agents named here) and
    TaskSchedules, within these bounds; none: nothing."""

    @property
    def runs_commands(self) -> bool:
        return self.tools is not None and "run" in self.tools


class Agent(Resource):
    plural: ClassVar[str] = "agents"
    singular: ClassVar[str] = "agent"
    short_name: ClassVar[str] = "ag"
    namespaced: ClassVar[bool] = True

    kind: Literal["Agent"] = "Agent"
    spec: AgentSpec = AgentSpec()
