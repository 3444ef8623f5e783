"""The transcript stays under its limit by dropping the middle, and reads well."""

from __future__ import annotations

from foreman.api.models import transcript
from foreman.api.models.transcript import Transcript, parse, render


def test_small_transcripts_are_kept_whole() -> None:
    kept = Transcript()
    kept.add({"event": "task", "turn": 0, "prompt": "p"})
    assert parse(kept.text()) == [{"event": "task", "turn": 0, "prompt": "p"}]
    assert Transcript().text() == ""


def test_a_long_transcript_loses_its_middle_with_a_marker() -> None:
    long = Transcript()
    for turn in range(2000):
        long.add({"event": "tool", "turn": turn, "name": "read_file", "ok": True, "result": "x" * 1000})
    text = long.text()
    assert len(text.encode()) <= transcript.LIMIT
    records = parse(text)
    assert [r["turn"] for r in records[: transcript.HEAD]] == list(range(transcript.HEAD))
    marker = records[transcript.HEAD]
    assert marker["event"] == "elided"
    assert records[-1]["turn"] == 1999
    assert marker["lines"] + len(records) - 1 == 2000


def test_render_shows_turns_calls_results_and_the_end() -> None:
    records = [
        {"event": "task", "turn": 0, "model": "m", "tools": ["read_file"], "prompt": "Fix\nit"},
        {"event": "answer", "turn": 1, "content": "Reading.",
         "toolCalls": [{"name": "read_file", "arguments": '{"path": "a"}'}], "usage": {"prompt": 10, "completion": 2}},
        {"event": "tool", "turn": 1, "name": "read_file", "ok": False, "result": "error: a: no such file"},
        {"event": "retry", "turn": 2, "reason": "server answered 500"},
        {"event": "pullRequest", "turn": 2, "url": "https://forge/t/r/pulls/1", "number": 1, "draft": True},
        {"event": "pullRequest", "turn": 2, "error": "POST /repos/t/r/pulls answered 403: forbidden"},
        {"event": "end", "turn": 2, "verdict": "GO", "reason": "Submitted", "summary": "done"},
    ]  # fmt: skip
    lines = render(records, width=60)
    assert "[  2] pr     https://forge/t/r/pulls/1 (draft)" in lines
    assert "[  2] pr     failed: POST /repos/t/r/pulls answered 403: forbidden" in lines
    assert lines[1] == "[  0] prompt Fix it"
    assert '[  1] call   read_file({"path": "a"})' in lines
    assert "[  1] ERR    read_file: error: a: no such file" in lines
    assert "[  2] retry  server answered 500" in lines
    assert lines[-1] == "[  2] end    GO (Submitted): done"
    assert transcript.capped("x" * 10, 4) == "xxxx… [6 more characters]"
