"""`foreman notify test SINK`: send one test event to a sink, as the notifier would, to check a URL and its Secret."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

import aiohttp
import typer
import yaml
from pydantic import ValidationError

from foreman.api.models.base import STORED, utcnow
from foreman.api.models.notify import NotifyEntry
from foreman.api.models.tasks import AgenticTask
from foreman.api.models.validation import describe
from foreman.cli.errors import UserError, user_errors
from foreman.cli.tasks import Kubeconfig, Namespace, _client
from foreman.cli.terminal import emit
from foreman.notifier.due import Send
from foreman.notifier.payload import payload
from foreman.notifier.secrets import SecretReader
from foreman.notifier.sinks import Sender

app = typer.Typer(help="Deliveries of finished tasks' results (the `foreman notifier` daemon sends them).")


def sink_entry(text: str) -> NotifyEntry:
    """One notify entry from YAML or JSON, as spec.notify spells it; a user error naming the field otherwise."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(f"SINK is not YAML or JSON: {str(error).splitlines()[0]}") from None
    try:
        return NotifyEntry.model_validate(document)
    except ValidationError as error:
        raise UserError(f"SINK: {describe(error)}") from None


def sample_task(namespace: str) -> AgenticTask:
    """A finished task that never ran: what a test event is about."""
    now = utcnow()
    body = {
        "metadata": {"name": "foreman-notify-test", "namespace": namespace, "uid": f"test-{secrets.token_hex(8)}",
                     "creationTimestamp": now},
        "spec": {"kind": "freeform"},
        "status": {"phase": "Succeeded", "verdict": "GO", "startedAt": now, "finishedAt": now,
                   "result": {"kind": "freeform", "verdict": "GO",
                              "summary": "A test event from `foreman notify test`: this sink works."}},
    }  # fmt: skip
    return AgenticTask.model_validate(body, context=STORED)


@app.command("test")
@user_errors
def send_test(
    sink: Annotated[str, typer.Argument(help="One spec.notify entry as YAML or JSON, e.g. '{log: {}}'.")],
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds the send may take.")] = 10.0,
) -> None:
    """Send a test event to one sink, with your own credentials (its Secret is read from the namespace, and must carry
    the label foreman.dev/notifier: "true", as for the notifier). Exit 0 once the receiver took it.

    Example:  foreman notify test '{apprise: {urlSecretRef: {name: team-chat, key: url}}}' -n team
    """
    entry = sink_entry(sink)

    async def run() -> str:
        async with await _client(kubeconfig, namespace) as foreman, aiohttp.ClientSession() as session:
            task = sample_task(foreman.namespace)
            send = Send(0, entry, f"{task.metadata.uid}-0-0", 1)
            outcome = await Sender(session, SecretReader(foreman.kube), timeout=timeout).send(task, send, payload(task))
        if outcome.result != "delivered":
            raise UserError(f"not delivered ({entry.sink_type}): {outcome.detail}")
        return f"delivered to the {entry.sink_type} sink (id {send.id})"

    emit(asyncio.run(run()))
