"""Tool calls that small models write as text instead of as structured `tool_calls`, recovered (pure functions).

A 135M-parameter model behind llama-server with a tool-rendering template answers in text, sometimes with the call
written out in its family's own syntax. A call is recovered only when it names an offered tool and its arguments
validate against that tool's schema; anything else stays text, so prose that mentions JSON never runs a tool.

The forms, as real servers pass them on: `<tool_call>{json}</tool_call>` (Hermes, Qwen), a fenced ```json block or
a bare JSON object with `name` and `arguments` (or `parameters`), `<|python_tag|>{json}` (Llama 3.x),
`[TOOL_CALLS] [{json}, ...]` (Mistral), `<function=NAME>{json}</function>` (Llama 3.1's custom form).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from foreman.worker.agent.stream import ToolCall

Schemas = Mapping[str, Mapping[str, Any]]
"""Tool name -> its JSON-schema `parameters` (the definitions the model was offered)."""
MAX_TEXT = 200_000
"""Longer answers are not searched (a call is short; scanning a huge answer costs CPU for nothing)."""

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FUNCTION = re.compile(r"<function=([A-Za-z0-9_.-]+)>\s*(.*?)\s*(?:</function>|$)", re.DOTALL)
_FENCED = re.compile(r"```(?:json|tool_call)?\s*\n?(.*?)```", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL = "[TOOL_CALLS]"
_DECODER = json.JSONDecoder()
_CALL_START = re.compile(r'(?:\[\s*)?\{\s*"name"\s*:')
MAX_TRIES = 16


def recover(text: str, schemas: Schemas) -> tuple[ToolCall, ...]:
    """The tool calls written in `text`, each naming an offered tool with valid arguments; () when none is."""
    if not text or len(text) > MAX_TEXT:
        return ()
    for candidates in _forms(text):
        calls = tuple(
            ToolCall(id="", name=name, arguments=json.dumps(arguments))
            for name, arguments in candidates
            if name in schemas and valid(arguments, schemas[name])
        )
        if calls:
            return calls
    return ()


def _forms(text: str) -> Iterator[list[tuple[str, Any]]]:
    """Candidate (name, arguments) lists, one per form, most specific first."""
    yield [call for block in _TAGGED.findall(text) for call in _calls(_call_values(block))]
    yield [(name, value) for name, body in _FUNCTION.findall(text) for value in _value_at_start(body)]
    if _PYTHON_TAG in text:
        yield list(_calls(_call_values(text.split(_PYTHON_TAG, 1)[1])))
    if _MISTRAL in text:
        yield list(_calls(_call_values(text.split(_MISTRAL, 1)[1])))
    yield [call for block in _FENCED.findall(text) for call in _calls(_call_values(block))]
    yield list(_calls(_call_values(text)))


def _call_values(text: str) -> list[Any]:
    """The JSON values that start where a call could (`{"name":`, or a list of such), at most MAX_TRIES of them: a
    decode is tried only there, so an answer of 100,000 braces costs no more than a few."""
    found: list[Any] = []
    position = 0
    for _ in range(MAX_TRIES):
        start = _CALL_START.search(text, position)
        if start is None:
            break
        try:
            value, position = _DECODER.raw_decode(text, start.start())
        except (ValueError, RecursionError):
            position = start.end()
            continue
        found.append(value)
    return found


def _value_at_start(text: str) -> list[Any]:
    try:
        return [_DECODER.raw_decode(text.lstrip())[0]]
    except (ValueError, RecursionError):
        return []


def _calls(values: list[Any]) -> Iterator[tuple[str, Any]]:
    """(name, arguments) of each value shaped like a call: {"name", "arguments" | "parameters"}, or a list of such;
    arguments given as a JSON string are decoded."""
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            arguments = item.get("arguments", item.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except (ValueError, RecursionError):
                    continue
            yield item["name"], arguments


def valid(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether `value` satisfies the subset of JSON Schema the tools' definitions use: type, properties, required,
    enum, items, minItems, minimum, maximum."""
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if kind in checks and not checks[kind](value):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return False
        items = schema.get("items")
        if items and not all(valid(item, items) for item in value):
            return False
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        if any(key not in value for key in schema.get("required", [])):
            return False
        if any(key not in properties for key in value) and properties:
            return False  # NB: an unknown argument would be a TypeError in the tool; so it is no call of it
        return all(valid(item, properties[key]) for key, item in value.items() if key in properties)
    return True
