"""The agent loop's decisions as pure functions: the prompt, what to do with an answer, and the history sent back.

Each answer is judged before anything of it enters the history, because local servers fail in ways an agent loop
must survive (shared/LLM-SERVERS.md): a stream cut mid-way, tool-call arguments that are not JSON (llama-server
answers HTTP 500 to a history that contains them), a turn with only reasoning or nothing at all, and plain text
where a tool call was wanted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml

from foreman.api.lifecycle import reasons
from foreman.api.models.agents import DEFAULT_TOOLS, AgentSpec, ToolName
from foreman.api.models.tasks import AgenticTask
from foreman.worker.agent import textcalls
from foreman.worker.agent.stream import Answer, ToolCall

Message = dict[str, Any]

CHARS_PER_TOKEN = 4
"""What a token is estimated at where a server reports no usage (English text and code average about 4 characters)."""
TRUNCATED_RETRIES = 2
"""Times a turn whose tool call came back cut off is asked again before the model is told to write shorter calls."""
REPEAT_LIMIT = 3
"""The same call (name and arguments) this many times in a row is a loop; the model is told so instead."""
SHORTENED_KEEP = 200
"""Characters an old tool result keeps when it is shortened to fit the context window."""

SYSTEM_PROMPT = """You are a careful software agent working in a workspace directory (a git checkout when the task \
names a repository). Use the tools to inspect and change files and, where allowed, to run commands. Paths are \
relative to the workspace. Work in small steps and check your work. When you are done, or cannot go on, call \
submit_result exactly once with a verdict (GO when the task is done and verified, NO-GO when it cannot or should not \
be done, INCOMPLETE when you ran out of ways forward) and a short summary of what you did and found."""

NUDGE = (
    "You answered without calling a tool. Continue with tool calls; when you are finished, call submit_result with "
    "your verdict and summary."
)
CUT_OFF_NOTE = (
    "Your last tool call was cut off before its arguments were complete (the answer hit the output-token limit). "
    "Call tools with shorter arguments: write large files in several parts, or edit them with edit_file."
)


@dataclass(frozen=True)
class Settings:
    """What one task's agent runs with: its Agent (or the defaults) and the task's own overrides."""

    model: str | None
    system_prompt: str
    tools: tuple[ToolName, ...]
    max_turns: int
    max_output_tokens: int | None
    temperature: float | None
    turn_timeout: float
    context_window_tokens: int | None


def settings_for(task: AgenticTask, agent: AgentSpec | None, *, aliases: Mapping[str, str] | None = None) -> Settings:
    """The task's agent settings; the model by the name the node's server knows it (`aliases`: task name -> served)."""
    spec = agent or AgentSpec()
    model = task.model_with(agent)
    tools = tuple(spec.tools) if spec.tools is not None else DEFAULT_TOOLS
    if "submit_result" not in tools:
        tools = (*tools, "submit_result")
    return Settings(
        model=(aliases or {}).get(model, model) if model else None,
        system_prompt=spec.system_prompt or SYSTEM_PROMPT,
        tools=tools,
        max_turns=spec.max_turns,
        max_output_tokens=spec.max_output_tokens,
        temperature=spec.temperature,
        turn_timeout=float(spec.turn_timeout_seconds),
        context_window_tokens=spec.context_window_tokens,
    )


def task_prompt(task: AgenticTask, *, branch: str | None) -> str:
    """The first user message: the task's prompt, then where the work is, its inputs, and (after an escalation) what
    the previous attempt came to."""
    payload = task.spec.payload
    parts = [prompt_of(task)]
    if payload.repo:
        parts.append(f"The workspace is a checkout of {payload.repo}, on branch {branch}.")
    if inputs := inputs_said(task):
        parts.append(inputs)
    if task.status.escalation is not None and task.status.escalation.previous:
        # NB: the smaller model's attempt, so the bigger one does not repeat its mistake
        parts.append("A previous attempt did not succeed.\n" + task.status.escalation.previous)
    return "\n\n".join(parts)


def asked(task: AgenticTask) -> str:
    """What the task asks, as the agent was told it (its prompt and inputs): what a reviewer judges the work by."""
    return "\n\n".join(part for part in (prompt_of(task), inputs_said(task)) if part)


def prompt_of(task: AgenticTask) -> str:
    return task.spec.payload.prompt or f"Carry out this {task.spec.kind} task."


def inputs_said(task: AgenticTask) -> str:
    inputs = task.spec.payload.inputs
    return "Inputs:\n" + yaml.safe_dump(inputs, sort_keys=True, allow_unicode=True).rstrip() if inputs else ""


def opening(settings: Settings, prompt: str) -> list[Message]:
    return [{"role": "system", "content": settings.system_prompt}, {"role": "user", "content": prompt}]


# -- judging an answer -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retry:
    """Ask the same question again: nothing of this answer may enter the history."""

    reason: str


@dataclass(frozen=True)
class Act:
    calls: tuple[ToolCall, ...]
    recovered: bool = False
    """The calls were written as text (textcalls): the history gets them as structured calls, without the text."""


@dataclass(frozen=True)
class Tell:
    """Answer with a user message (a nudge, a note) instead of tool results."""

    message: str


@dataclass(frozen=True)
class Stop:
    """End the loop: the model would not call tools."""

    reason: str
    summary: str


Step = Retry | Act | Tell | Stop


def judge(answer: Answer, *, truncated_retries: int, nudged: bool, schemas: textcalls.Schemas | None = None) -> Step:
    """What to do with one answer. `truncated_retries`: how often this turn was already retried for cut-off calls;
    `nudged`: whether the model was already told once to call a tool; `schemas`: the offered tools' parameters, for
    calls written as text."""
    broken = [call for call in answer.tool_calls if not call.name or call.parsed() is None]
    if answer.finish_reason is None:
        return Retry("the stream ended before the answer was complete")
    if broken:
        if truncated_retries < TRUNCATED_RETRIES:
            return Retry(f"tool call {broken[0].name or '?'} has arguments that are not valid JSON")
        return Tell(CUT_OFF_NOTE)
    if answer.tool_calls:
        return Act(answer.tool_calls)
    if recovered := textcalls.recover(answer.content, schemas or {}):
        return Act(recovered, recovered=True)
    if not nudged:
        return Tell(NUDGE)
    said = answer.content.strip() or "(nothing)"
    last_words = f"the model stopped calling tools without submit_result; its last words: {said[:2000]}"
    return Stop(reasons.NO_TOOL_CALL, last_words)


# -- the history -----------------------------------------------------------------------------------------------------


def assistant_message(answer: Answer, calls: Sequence[ToolCall]) -> Message | None:
    """The answer as it goes back to the server; None when it said nothing (some servers reject an empty message)."""
    if not calls and not answer.content.strip():
        return None
    message: Message = {"role": "assistant", "content": answer.content}
    if calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in calls
        ]
    return message


def with_ids(calls: Sequence[ToolCall], turn: int) -> tuple[ToolCall, ...]:
    """Calls with an id each: some servers send none, and a tool result must name the call it answers."""
    return tuple(
        call if call.id else ToolCall(id=f"call_{turn}_{index}", name=call.name, arguments=call.arguments)
        for index, call in enumerate(calls)
    )


def told(messages: list[Message], text: str) -> list[Message]:
    """The history with a user message added; joined to a user message before it, since some chat templates
    refuse two user turns in a row."""
    if messages and messages[-1].get("role") == "user":
        return [*messages[:-1], {**messages[-1], "content": f"{messages[-1]['content']}\n\n{text}"}]
    return [*messages, {"role": "user", "content": text}]


def tool_message(call: ToolCall, content: str) -> Message:
    return {"role": "tool", "tool_call_id": call.id, "content": content}


def repeats(previous: Sequence[ToolCall], call: ToolCall) -> int:
    """How many of the latest calls, counting back, were this same call (same name, same arguments)."""
    key = (call.name, _canonical(call))
    count = 0
    for earlier in reversed(previous):
        if (earlier.name, _canonical(earlier)) != key:
            break
        count += 1
    return count


def _canonical(call: ToolCall) -> str:
    parsed = call.parsed()
    return json.dumps(parsed, sort_keys=True) if parsed is not None else call.arguments


def estimate_tokens(messages: Sequence[Message]) -> int:
    return sum(len(json.dumps(message, ensure_ascii=False)) for message in messages) // CHARS_PER_TOKEN


COMPACT_TO = 0.5
"""When the conversation outgrows its budget, older tool results are shortened until it takes at most this share of
it: then turns only append again for a while, and the server's prompt cache (the common prefix) keeps holding."""


@dataclass(frozen=True)
class Fitting:
    """How the history is fitted to the model's context, turn after turn, keeping the server's prompt cache.

    A server reuses its KV cache only for the prefix a request shares with the one before (llama-server: extending
    a conversation reused 2,332 of 2,346 prompt tokens; changing an early message, only up to it). So the sent
    history changes before its end only when it must: once it outgrows `budget`, the oldest tool results are
    shortened in one big step, down to COMPACT_TO of the budget, and stay so; until the budget is reached again,
    turns only append (hysteresis). The system prompt and the task stay whole, and so do the latest `keep_recent`
    messages unless the budget cannot be met without them (then all but the very last)."""

    budget: int | None
    shortened: frozenset[int] = frozenset()
    """Indexes of the messages sent shortened (each, once shortened, is always sent so)."""
    keep_recent: int = 6

    def view(self, messages: Sequence[Message]) -> list[Message]:
        """The history as it is sent."""
        return [_shortened(m) if index in self.shortened else m for index, m in enumerate(messages)]

    def fitted(self, messages: Sequence[Message]) -> Fitting:
        """The fitting for this history: the same while it fits, else with more of it shortened."""
        if self.budget is None or estimate_tokens(self.view(messages)) <= self.budget:
            return self
        target = int(self.budget * COMPACT_TO)
        shortened = set(self.shortened)
        size = estimate_tokens(self.view(messages))
        # NB: the oldest first; the recent ones too (but the very last) only when the rest cannot make it fit
        older = range(len(messages) - self.keep_recent)
        recent = range(max(0, len(messages) - self.keep_recent), len(messages) - 1)
        for index in [*older, *recent]:
            if index in recent and size <= self.budget:
                break
            message = messages[index]
            if index in shortened or message.get("role") != "tool" or len(message.get("content") or "") <= SHORT:
                continue
            shortened.add(index)
            size -= (len(message.get("content") or "") - len(_shortened(message)["content"])) // CHARS_PER_TOKEN
            if size <= target:
                break
        return replace(self, shortened=frozenset(shortened))

    def within(self, budget: int) -> Fitting:
        """The same fitting under a smaller budget (the server said its context is smaller than we thought)."""
        return replace(self, budget=min(budget, self.budget) if self.budget is not None else budget)


SHORT = SHORTENED_KEEP + 100
"""Tool results shorter than this are never shortened: there is nothing to gain."""


def _shortened(message: Message) -> Message:
    content = message.get("content") or ""
    dropped = len(content) - SHORTENED_KEEP
    return {**message, "content": f"{content[:SHORTENED_KEEP]}\n[shortened to fit the context window: {dropped} "
            "characters dropped]"}  # fmt: skip


def budget_for(window: int | None, served: int | None, max_output: int | None) -> int | None:
    """The conversation's budget in tokens: the smaller of the Agent's window and the context the node's server
    gives the model (per slot for llama-server), less room for the reply. None when neither is known."""
    known = [size for size in (window, served) if size]
    if not known:
        return None
    context = min(known)
    return max(context // 4, context - min(max_output or REPLY_ROOM, context // 2))


REPLY_ROOM = 1024
"""Tokens kept free for the answer when the Agent sets no maxOutputTokens."""
