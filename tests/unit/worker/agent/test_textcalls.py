"""Tool calls written as text: every known form is recovered when it names an offered tool with valid arguments,
and near-misses stay text (a wrong name, bad arguments, prose that mentions JSON)."""

from __future__ import annotations

import json

import pytest

from foreman.worker.agent import tools
from foreman.worker.agent.conversation import Act, Tell, judge
from foreman.worker.agent.stream import Answer
from foreman.worker.agent.textcalls import recover, valid

SCHEMAS = {name: tools.DEFINITIONS[name]["function"]["parameters"] for name in tools.DEFINITIONS}  # type: ignore[index]
READ = {"path": "calc.py"}


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "calc.py"}}\n</tool_call>',
        'Let me look.\n<tool_call>{"name": "read_file", "arguments": "{\\"path\\": \\"calc.py\\"}"}</tool_call>',
        '```json\n{"name": "read_file", "arguments": {"path": "calc.py"}}\n```',
        'I will call {"name": "read_file", "parameters": {"path": "calc.py"}} now.',
        '<|python_tag|>{"name": "read_file", "parameters": {"path": "calc.py"}}',
        '[TOOL_CALLS] [{"name": "read_file", "arguments": {"path": "calc.py"}}]',
        '<function=read_file>{"path": "calc.py"}</function>',
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "calc.py"}}',  # cut before its closing tag
    ],
)
def test_each_form_is_recovered(text: str) -> None:
    (call,) = recover(text, SCHEMAS)
    assert (call.name, json.loads(call.arguments)) == ("read_file", READ)


def test_several_calls_and_submit_result() -> None:
    text = (
        '<tool_call>{"name": "read_file", "arguments": {"path": "a.py"}}</tool_call>\n'
        '<tool_call>{"name": "submit_result", "arguments": {"verdict": "GO", "summary": "done"}}</tool_call>'
    )
    assert [call.name for call in recover(text, SCHEMAS)] == ["read_file", "submit_result"]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>',  # not offered
        '<tool_call>{"name": "read_file", "arguments": {"file": "calc.py"}}</tool_call>',  # unknown argument
        '<tool_call>{"name": "read_file", "arguments": {}}</tool_call>',  # required missing
        '{"name": "submit_result", "arguments": {"verdict": "MAYBE", "summary": "x"}}',  # not in the enum
        '{"name": "run", "arguments": {"argv": "rm -rf /"}}',  # argv must be a list
        '{"name": "run", "arguments": {"argv": []}}',  # minItems
        'The config is {"path": "calc.py", "mode": "r"}: JSON, but no call.',
        "I would use read_file on calc.py.",
        '{"name": "read_file", "arguments": {"path": "calc.py"',  # broken JSON
        "",
        # SmolLM2-135M behind llama-server (11434.0.0, the Qwen 2.5 tool template), December 2026: it echoes the
        # offered tools' definitions, each with a name and `parameters`, as a list in a fenced block
        'Here is the list of files, and call submit_result with verdict GO:\n\n```\n[\n  {\n    "name": '
        '"list_files",\n    "description": "List files and directories under a path, to the given depth.",\n'
        '    "parameters": {\n      "type": "object",\n      "properties": {\n        "path": {\n          "type":'
        ' "string",\n          "description": "Path relative to the workspace.",\n          "default": "."\n'
        '        }\n      },\n      "required": []\n    }\n  }\n]\n```',
        "```\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with"
        ' function signatures within <tools></tools> XML tags:\n<tools>\n{"type": "function", "function": {"name":'
        ' "list_files", "description": "List files and directories under a path, to the given depth.", "parameters":'
        ' {"type": "object", "properties": {"path": {"type": "string"}}, "required": []}}}\n</tools>\n```',
        "The tool is designed to assist users in their task of editing and improving their code.",
    ],
)
def test_near_misses_stay_text(text: str) -> None:
    assert recover(text, SCHEMAS) == ()


def test_only_offered_tools_count() -> None:
    text = '<tool_call>{"name": "run", "arguments": {"argv": ["ls"]}}</tool_call>'
    assert recover(text, {"read_file": SCHEMAS["read_file"]}) == ()
    assert recover(text, SCHEMAS)[0].name == "run"


def test_judge_turns_a_text_call_into_an_act_and_plain_text_into_a_nudge() -> None:
    text = '<tool_call>{"name": "read_file", "arguments": {"path": "calc.py"}}</tool_call>'
    step = judge(Answer(text, "", (), "stop", None), truncated_retries=0, nudged=False, schemas=SCHEMAS)
    assert isinstance(step, Act)
    assert step.recovered
    plain = Answer("no call here", "", (), "stop", None)
    assert isinstance(judge(plain, truncated_retries=0, nudged=False, schemas=SCHEMAS), Tell)


def test_the_schema_subset() -> None:
    run = SCHEMAS["run"]
    assert valid({"argv": ["ls"], "timeout_seconds": 5}, run)
    assert not valid({"argv": ["ls"], "timeout_seconds": 0}, run)  # minimum 1
    assert not valid({"argv": [1]}, run)
    assert not valid({"argv": ["ls"], "timeout_seconds": True}, run)
    assert valid({"path": "x", "start_line": 2}, SCHEMAS["read_file"])
    assert not valid({"path": "x", "start_line": "2"}, SCHEMAS["read_file"])


def test_a_huge_or_deeply_nested_answer_is_no_call() -> None:
    assert recover("{" * 100_000, SCHEMAS) == ()
    assert recover('{"name": ' * 20_000, SCHEMAS) == ()
    assert recover('{"a":' * 5000 + "1" + "}" * 5000, SCHEMAS) == ()
