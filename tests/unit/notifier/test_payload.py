"""What a delivery says: the envelope's summary and a way back, never the transcript unless asked; and what a
receiver's HTTP answer means."""

from datetime import timedelta

import pytest

from foreman.api.models.base import STORED
from foreman.api.models.tasks import AgenticTask
from foreman.notifier.payload import chat_message, payload
from foreman.notifier.sinks import http_outcome
from tests.factories import T0


def done() -> AgenticTask:
    body = {
        "metadata": {"name": "fix-1", "namespace": "team", "uid": "u1", "creationTimestamp": T0,
                     "labels": {"foreman.dev/schedule": "nightly"}},
        "spec": {"kind": "issue-fix", "payload": {"prompt": "fix the bug"}},
        "status": {
            "phase": "Succeeded", "verdict": "GO", "attempts": 1, "transcriptRef": "fix-1-transcript",
            "startedAt": T0 + timedelta(seconds=3), "finishedAt": T0 + timedelta(seconds=63),
            "usage": {"promptTokens": 10, "completionTokens": 5, "totalTokens": 15, "turns": 2},
            "result": {"kind": "issue-fix", "verdict": "GO", "summary": "fixed it", "elapsedSec": 60,
                       "extra": {"changedFiles": ["a.py", "b.py"]},
                       "pullRequest": {"url": "https://forge/pr/7", "number": 7, "draft": False}},
        },
    }  # fmt: skip
    return AgenticTask.model_validate(body, context=STORED)


def test_the_payload_is_the_envelopes_summary_and_a_link_back() -> None:
    body = payload(done(), dashboard="https://foreman.example/")
    assert body["task"] == {"name": "fix-1", "namespace": "team", "uid": "u1", "kind": "issue-fix",
                            "schedule": "nightly"}  # fmt: skip
    assert (body["phase"], body["verdict"], body["summary"]) == ("Succeeded", "GO", "fixed it")
    assert (body["changedFiles"], body["pullRequest"]) == (["a.py", "b.py"], "https://forge/pr/7")
    assert body["usage"]["totalTokens"] == 15
    assert body["durations"] == {"queuedSeconds": 3.0, "runSeconds": 60.0, "totalSeconds": 63.0}
    assert body["links"] == {
        "describe": "foreman describe fix-1 -n team",
        "dashboard": "https://foreman.example/#/task/team/fix-1",
    }
    assert "transcript" not in body
    assert "fix the bug" not in str(body)  # nor the prompt


def test_the_transcript_only_when_asked() -> None:
    assert payload(done(), transcript='{"role": "user"}')["transcript"] == '{"role": "user"}'


def test_a_chat_message_is_short_and_links_back() -> None:
    title, text = chat_message(payload(done()))
    assert title == "team/fix-1 Succeeded (GO)"
    assert text.splitlines() == [
        "fixed it", "Changed: a.py, b.py", "Pull request: https://forge/pr/7", "foreman describe fix-1 -n team"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "result"),
    [(200, "delivered"), (204, "delivered"), (408, "retry"), (429, "retry"), (500, "retry"), (503, "retry"),
     (400, "failed"), (401, "failed"), (404, "failed"), (410, "failed"), (301, "failed")],
)  # fmt: skip
def test_4xx_other_than_408_and_429_are_not_tried_again(status: int, result: str) -> None:
    outcome = http_outcome(status, "  the receiver's words \n")
    assert outcome.result == result
    assert outcome.detail is None if result == "delivered" else outcome.detail == f"HTTP {status}: the receiver's words"
