"""The CLI never relays a model's control codes: a summary and a tool argument full of ESC and BEL sequences (clear
the screen, a fake red line, a window title, an OSC 8 link hiding its address, a bidi override) print as visible
text in `foreman get`, `describe`, `result` and `logs`."""

from __future__ import annotations

import json

from foreman.api.http.client import Kube
from foreman.api.models import transcript
from foreman.api.models.tasks import AgenticTask
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, make_task

HOSTILE = (
    "\x1b[2J\x1b[H\x1b[31mall tasks Succeeded\x1b[0m\x07\x1b]0;owned\x07"
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\\u202edecoy\r\x9b31m"
)


async def test_model_written_control_codes_print_as_text(kube: Kube, namespace: str, cluster: Cluster) -> None:
    task = await make_task(kube, namespace, "hostile", executor="agent")
    envelope = {"schemaVersion": "foreman.v1", "kind": "freeform", "verdict": "GO", "summary": HOSTILE}
    await kube.patch_status(
        AgenticTask, "hostile",
        {"phase": "Succeeded", "verdict": "GO", "result": envelope, "message": HOSTILE,
         "transcriptRef": transcript.configmap_name("hostile")},
        namespace=namespace,
    )  # fmt: skip
    records = [
        {"event": "answer", "turn": 1, "content": HOSTILE, "toolCalls": [
            {"id": "c1", "name": "write_file", "arguments": json.dumps({"path": HOSTILE, "content": HOSTILE})}]},
        {"event": "tool", "turn": 1, "id": "c1", "name": "write_file", "ok": True, "result": HOSTILE},
        {"event": "end", "turn": 1, "verdict": "GO", "reason": "Submitted", "summary": HOSTILE},
    ]  # fmt: skip
    await kube.apply(transcript.configmap(task, "\n".join(json.dumps(r) for r in records)))
    for args in (
        ("get", "tasks", "-n", namespace, "-o", "wide"),
        ("describe", "task", "hostile", "-n", namespace),
        ("logs", "hostile", "-n", namespace),
    ):
        code, out, err = await foreman_cli(cluster, *args)
        assert code == 0, (args, err)
        for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\r"):
            assert raw not in out, (args, repr(raw))
            assert raw not in err, (args, repr(raw))
    code, out, _ = await foreman_cli(cluster, "logs", "hostile", "-n", namespace)
    assert "\\x1b[2J\\x1b[H\\x1b[31mall tasks Succeeded" in out  # shown, not sent
