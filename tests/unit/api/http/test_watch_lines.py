"""Watch lines as the apiserver writes them, decoded without a server (the fast path and every fallback)."""

import json

import pytest

from foreman.api.http.client import WatchEvent, decode_raw_watch_line, decode_watch_line
from foreman.api.http.errors import Gone
from foreman.api.models.tasks import AgenticTask


def line(kind: str, obj: dict[str, object]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


TASK = {
    "apiVersion": "foreman.dev/v1alpha1",
    "kind": "AgenticTask",
    "metadata": {"name": "t", "namespace": "ns", "resourceVersion": "42"},
    "spec": {"kind": "verify"},
    "status": {"phase": "Running", "assignedNode": "n1"},
}


@pytest.mark.parametrize("kind", ["ADDED", "MODIFIED", "DELETED"])
def test_an_object_event_becomes_a_typed_event_and_its_resource_version(kind: str) -> None:
    seen, event = decode_watch_line(AgenticTask, line(kind, TASK))
    assert seen == "42"
    assert isinstance(event, WatchEvent)
    assert (event.type, event.object.name, event.object.phase, event.object.status.assigned_node) == (
        kind,
        "t",
        "Running",
        "n1",
    )


def test_a_bookmark_moves_the_resource_version_and_yields_nothing() -> None:
    bookmark = {"kind": "AgenticTask", "apiVersion": "foreman.dev/v1alpha1", "metadata": {"resourceVersion": "99"}}
    assert decode_watch_line(AgenticTask, line("BOOKMARK", bookmark)) == ("99", None)


def test_an_object_the_model_rejects_is_skipped_but_still_moves_the_resource_version() -> None:
    rejected = {**TASK, "spec": {"kind": "verify", "priority": "not a number"}}
    assert decode_watch_line(AgenticTask, line("MODIFIED", rejected)) == ("42", None)


def test_an_error_line_raises_its_api_error() -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410}
    with pytest.raises(Gone):
        decode_watch_line(AgenticTask, line("ERROR", status))


def test_a_raw_watch_line_keeps_the_object_as_a_dict_and_skips_bookmarks() -> None:
    configmap = {"metadata": {"name": "t-transcript", "resourceVersion": "5"}, "data": {"transcript.jsonl": "{}"}}
    seen, event = decode_raw_watch_line(line("MODIFIED", configmap))
    assert seen == "5"
    assert event == WatchEvent("MODIFIED", configmap)
    assert decode_raw_watch_line(line("BOOKMARK", {"metadata": {"resourceVersion": "6"}})) == ("6", None)
    with pytest.raises(Gone):
        decode_raw_watch_line(line("ERROR", {"code": 410, "reason": "Expired", "message": "too old"}))
