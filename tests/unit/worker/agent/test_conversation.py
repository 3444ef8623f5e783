"""The loop's decisions: what each kind of answer leads to, and what goes back into the history."""

from __future__ import annotations

import pytest

from foreman.api.models.agents import AgentSpec
from foreman.api.models.tasks import AgenticTask
from foreman.worker.agent import conversation
from foreman.worker.agent.conversation import NUDGE, Act, Retry, Stop, Tell, judge
from foreman.worker.agent.stream import Answer, ToolCall


def answer(
    content: str = "", calls: tuple[ToolCall, ...] = (), finish: str | None = "stop", reasoning: str = ""
) -> Answer:
    return Answer(content=content, reasoning=reasoning, tool_calls=calls, finish_reason=finish, usage=None)


GOOD = ToolCall("a", "read_file", '{"path": "x"}')
CUT = ToolCall("b", "write_file", '{"path": "x", "content": "unfinish')


@pytest.mark.parametrize(
    ("given", "retries", "nudged", "expected"),
    [
        (answer(calls=(GOOD,), finish="tool_calls"), 0, False, Act((GOOD,))),
        (answer(calls=(GOOD,), finish=None), 0, False, Retry("the stream ended before the answer was complete")),
        (answer(calls=(GOOD, CUT), finish="length"), 0, False, Retry),
        (answer(calls=(GOOD, CUT), finish="length"), 1, False, Retry),
        (answer(calls=(GOOD, CUT), finish="length"), 2, False, Tell(conversation.CUT_OFF_NOTE)),
        (answer(calls=(ToolCall("c", "", "{}"),), finish="tool_calls"), 0, False, Retry),
        (answer("I'd edit the file."), 0, False, Tell(NUDGE)),
        (answer(reasoning="thinking only"), 0, False, Tell(NUDGE)),
        (answer(""), 0, True, Stop),
        (answer(calls=(GOOD,), finish="length"), 0, True, Act((GOOD,))),  # cut after a complete call: use it
    ],
)
def test_judge(given: Answer, retries: int, nudged: bool, expected: object) -> None:
    step = judge(given, truncated_retries=retries, nudged=nudged)
    if isinstance(expected, type):
        assert isinstance(step, expected)
    else:
        assert step == expected
    if isinstance(step, Stop):
        assert step.reason == "NoToolCall"


def test_nothing_empty_goes_back_and_calls_keep_their_json() -> None:
    assert conversation.assistant_message(answer(reasoning="only thinking"), ()) is None
    assert conversation.assistant_message(answer("  "), ()) is None
    message = conversation.assistant_message(answer("ok"), (GOOD,))
    assert message == {
        "role": "assistant",
        "content": "ok",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "x"}'}}
        ],
    }


def test_a_user_message_after_a_user_message_is_joined_to_it() -> None:
    history = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    assert conversation.told(history, "nudge") == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "task\n\nnudge"},
    ]
    after_tool = [*history, {"role": "tool", "tool_call_id": "a", "content": "r"}]
    assert conversation.told(after_tool, "nudge")[-1] == {"role": "user", "content": "nudge"}


def test_calls_without_ids_get_unique_ones() -> None:
    calls = conversation.with_ids((ToolCall("", "f", "{}"), ToolCall("keep", "g", "{}"), ToolCall("", "h", "{}")), 7)
    assert [c.id for c in calls] == ["call_7_0", "keep", "call_7_2"]


def test_repeats_count_the_same_call_back_from_the_latest() -> None:
    same = ToolCall("1", "grep", '{"pattern": "x", "path": "."}')
    reordered = ToolCall("2", "grep", '{"path": ".", "pattern": "x"}')
    other = ToolCall("3", "grep", '{"pattern": "y"}')
    assert conversation.repeats([same, other, same, reordered], same) == 2
    assert conversation.repeats([], same) == 0


def _grown(turns: int, size: int = 4000) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "task"},
        *({"role": "tool", "tool_call_id": str(i), "content": "x" * size} for i in range(turns)),
    ]


def test_fitting_shortens_the_oldest_tool_results_in_one_step_and_keeps_the_head_and_the_recent_whole() -> None:
    history = _grown(10)
    fitting = conversation.Fitting(7000, keep_recent=3).fitted(history)
    sent = fitting.view(history)
    assert conversation.estimate_tokens(sent) <= 7000
    assert fitting.shortened == frozenset(range(2, 9))  # all it may: the recent three hold 3,000 of the 3,500
    assert sent[:2] == history[:2]
    assert sent[-3:] == history[-3:]
    assert "[shortened to fit the context window" in sent[2]["content"]
    assert conversation.Fitting(None).fitted(history).view(history) == history


def test_fitting_keeps_the_sent_prefix_byte_identical_until_the_budget_is_reached_again() -> None:
    """The server's prompt cache holds as long as each request extends the one before."""
    fitting = conversation.Fitting(20_000, keep_recent=3)
    before: list[dict[str, str]] = []
    compactions = 0
    for turns in range(1, 60):
        history = _grown(turns)
        fitting = fitting.fitted(history)
        sent = fitting.view(history)
        assert conversation.estimate_tokens(sent) <= 20_000
        if sent[: len(before)] != before:
            compactions += 1
        before = sent
    assert 1 <= compactions <= 60 // 5  # a compaction now and then, not a rewrite every turn


def test_the_budget_is_the_smaller_context_less_room_for_the_reply() -> None:
    assert conversation.budget_for(None, None, None) is None
    assert conversation.budget_for(32768, 8192, 512) == 8192 - 512
    assert conversation.budget_for(None, 8192, None) == 8192 - conversation.REPLY_ROOM
    assert conversation.budget_for(4096, None, 100_000) == 4096 // 2  # a reply never takes more than half


def test_settings_and_prompt() -> None:
    task = AgenticTask.model_validate(
        {"metadata": {"name": "t"}, "spec": {"kind": "issue-fix", "modelRef": "big", "payload": {
            "prompt": "Fix it.", "repo": "/r", "inputs": {"issue": 42}}}}
    )  # fmt: skip
    settings = conversation.settings_for(task, AgentSpec(model="small", tools=["read_file"], max_turns=5))
    assert settings.model == "big"  # the task's modelRef wins
    assert settings.tools == ("read_file", "submit_result")  # submit_result is always there
    assert conversation.settings_for(task, None).tools == (
        "list_files", "read_file", "write_file", "edit_file", "grep", "submit_result"
    )  # fmt: skip
    prompt = conversation.task_prompt(task, branch="foreman/t")
    assert prompt.startswith("Fix it.")
    assert "checkout of /r, on branch foreman/t" in prompt
    assert "issue: 42" in prompt
