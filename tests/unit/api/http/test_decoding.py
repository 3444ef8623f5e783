"""Bounded decoding: what json.loads takes is decoded as it is; a body nested deeper than it can take loses only the
subtrees below MAX_DEPTH, and each object that lost something says so."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foreman.api.http import decoding
from foreman.api.models.base import DECODE_ERROR


def nested(levels: int) -> str:
    return '{"a":' * levels + '"deep ] } [ { \\" end"' + "}" * levels


def test_a_list_with_one_poison_object_decodes_the_others_whole() -> None:
    good = {"metadata": {"name": "ok"}, "spec": {"payload": {"text": 'brackets ] } [ { and "quotes" \\'}}}
    bad = '{"metadata": {"name": "bad"}, "spec": {"payload": ' + nested(100_000) + "}}"
    body = '{"kind": "AgenticTaskList", "items": [' + json.dumps(good) + ", " + bad + "]}"
    decoded = decoding.loads(body.encode())
    assert decoded["items"][0] == good
    poisoned = decoded["items"][1]
    assert DECODE_ERROR in poisoned["metadata"]["annotations"]
    assert poisoned["metadata"]["name"] == "bad"


def test_a_watch_event_and_a_single_object() -> None:
    event = decoding.loads('{"type": "MODIFIED", "object": {"metadata": {"name": "x"}, "spec": ' + nested(3000) + "}}")
    assert DECODE_ERROR in event["object"]["metadata"]["annotations"]
    single = decoding.loads('{"metadata": {"name": "x", "annotations": {"k": "v"}}, "spec": ' + nested(3000) + "}")
    assert single["metadata"]["annotations"]["k"] == "v"
    assert DECODE_ERROR in single["metadata"]["annotations"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\:, \n'),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=20,
)


@given(json_values)
def test_what_json_takes_is_unchanged(value: Any) -> None:
    text = json.dumps(value)
    assert decoding.loads(text) == value
    assert json.loads(decoding._cut_deep(text)) == value  # shallow: nothing cut
