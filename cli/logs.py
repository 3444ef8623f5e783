"""`foreman logs`: an agent task's transcript, readable, and followed live with -f."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from foreman.api.models import transcript
from foreman.api.models.tasks import TERMINAL_PHASES
from foreman.cli.errors import UserError, user_errors
from foreman.cli.tasks import Kubeconfig, Namespace, _client, _get
from foreman.cli.terminal import emit

FOLLOW_EVERY = 1.0
"""Seconds between looks at a running task's transcript (it changes once per model turn)."""


@user_errors
def logs(
    name: Annotated[str, typer.Argument()],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new turns until the task ends.")
    ] = False,
    width: Annotated[int, typer.Option(help="Characters shown of each text (results are shortened).")] = 400,
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, help="Which attempt's transcript (default: the latest).")
    ] = None,
    namespace: Namespace = "default",
    kubeconfig: Kubeconfig = None,
) -> None:
    """Print an agent task's transcript: turn numbers, what the model said, its tool calls and their results.

    Example:  foreman logs fix-issue-42 -f;  foreman logs fix-issue-42 --attempt 1
    """

    async def run() -> None:
        async with await _client(kubeconfig, namespace) as foreman:
            task = await _get(foreman, name)
            numbers = [a.number for a in task.status.attempt_history]
            if attempt is not None and numbers and attempt not in numbers:
                raise UserError(f"{name} has no attempt {attempt} (its attempts: {', '.join(map(str, numbers))})")
            shown: set[str] = set()
            while True:
                _show(await foreman.transcript(name, attempt), shown, width)
                if not follow or task.phase in TERMINAL_PHASES:
                    break
                await asyncio.sleep(FOLLOW_EVERY)
                task = await _get(foreman, name)
            if not shown:
                which = f"attempt {attempt} of {name}" if attempt is not None else name
                raise UserError(f"{which} has no transcript (phase {task.phase}; only agent tasks have one)")

    asyncio.run(run())


def _show(text: str | None, shown: set[str], width: int) -> None:
    """Print the lines not printed yet (by content: the middle of a long transcript may have been dropped)."""
    for line in (text or "").splitlines():
        if line and line not in shown:
            shown.add(line)
            for rendered in transcript.render(transcript.parse(line), width=width):
                emit(rendered)
