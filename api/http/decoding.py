"""JSON from the apiserver, decoded so that no stored object can stop a daemon.

The apiserver stores a payload nested thousands of levels deep; json.loads gives up past about a thousand with a
RecursionError, and a controller that dies decoding a list dies again after every restart. So a body json.loads
cannot take is decoded again with every subtree deeper than MAX_DEPTH cut out (the rest of the body intact), and
each object that lost something carries the annotation DECODE_ERROR saying what: the controller fails such a task
with reason Undecodable, a worker never runs one, and everything else reads it as usual.
"""

from __future__ import annotations

import json
import re
from typing import Any

from foreman.api.models.base import DECODE_ERROR

MAX_DEPTH = 66
"""Nesting levels kept, counted from the body: a list's items and a watch event's object sit two levels down, so
they keep 64."""
CUT = f"<nested deeper than {MAX_DEPTH} levels: not decoded>"
_STRUCTURE = re.compile(r'["\[\]{}]')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def loads(raw: bytes | str) -> Any:
    """json.loads, and for what it cannot take, the bounded decoding above."""
    try:
        return json.loads(raw)
    except RecursionError:
        pass
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    body = json.loads(_cut_deep(text))
    for obj in _objects(body):
        if _holds_cut(obj):
            metadata = obj.setdefault("metadata", {})
            annotations = metadata.setdefault("annotations", None) or {}
            annotations[DECODE_ERROR] = (
                f"part of this object is nested more than {MAX_DEPTH - 2} levels deep; cut there"
            )
            metadata["annotations"] = annotations
    return body


def _cut_deep(text: str) -> str:
    """The text with every array or object that opens below MAX_DEPTH replaced by the CUT string (one pass over its
    brackets and strings, no recursion)."""
    limit = MAX_DEPTH
    pieces: list[str] = []
    depth = 0
    kept_until = 0
    cut_from: int | None = None
    position = 0
    while match := _STRUCTURE.search(text, position):
        at = match.start()
        char = match.group()
        if char == '"':
            string = _STRING.match(text, at)
            position = string.end() if string else len(text)
            continue
        position = at + 1
        if char in "[{":
            depth += 1
            if depth > limit and cut_from is None:
                cut_from = at
        else:
            if cut_from is not None and depth == limit + 1:
                pieces += [text[kept_until:cut_from], json.dumps(CUT)]
                kept_until = at + 1
                cut_from = None
            depth -= 1
    pieces.append(text[kept_until:])
    return "".join(pieces)


def _objects(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("items"), list):
        return [item for item in body["items"] if isinstance(item, dict)]
    if isinstance(body.get("object"), dict) and "type" in body:
        return [body["object"]]
    return [body]


def _holds_cut(obj: Any) -> bool:
    stack = [obj]
    while stack:
        current = stack.pop()
        if current == CUT:
            return True
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return False
