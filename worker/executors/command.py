"""`command`: runs the argv configured on the worker, never a shell string from the task.

The payload goes in as JSON on stdin and as FOREMAN_* environment variables. Exit 0 → GO, non-zero → NO-GO; if the
last JSON line on stdout is a foreman.v1 envelope it becomes the result (a JSON line that is not a valid envelope
is a contract violation). stdout/stderr tails go into `extra`. Cancellation kills the whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.tasks import AgenticTask
from foreman.api.models.validation import describe
from foreman.worker.executors.base import ContractViolation, ExecutionContext, ExecutorHooks

TAIL = 4000


def environment(task: AgenticTask, context: ExecutionContext) -> dict[str, str]:
    payload = task.spec.payload
    values = {
        "FOREMAN_TASK_NAME": task.name,
        "FOREMAN_TASK_NAMESPACE": task.namespace or "",
        "FOREMAN_TASK_KIND": task.spec.kind,
        "FOREMAN_NODE": context.node_name,
        "FOREMAN_ATTEMPT": str(context.attempt),
        "FOREMAN_PROMPT": payload.prompt or "",
        "FOREMAN_REPO": payload.repo or "",
        "FOREMAN_BRANCH": payload.branch or "",
        "FOREMAN_MODEL_REF": task.spec.model_ref or "",
        "FOREMAN_PAYLOAD": json.dumps(payload.to_wire()),
    }
    return {**os.environ, **values}


def result_from(task: AgenticTask, code: int, stdout: str, stderr: str, elapsed: float) -> ResultEnvelope:
    """The envelope for a finished process (pure)."""
    extra: dict[str, Any] = {"exitCode": code, "stdoutTail": stdout[-TAIL:], "stderrTail": stderr[-TAIL:]}
    last_json = next((line for line in reversed(stdout.splitlines()) if line.strip().startswith("{")), None)
    if last_json is not None:
        try:
            reported = ResultEnvelope.model_validate_json(last_json)
        except ValidationError as error:
            raise ContractViolation(
                f"last JSON line on stdout is not a foreman.v1 envelope: {describe(error)}"
            ) from None
        return reported.model_copy(update={"extra": {**extra, **reported.extra}, "elapsed_sec": round(elapsed, 3)})
    return ResultEnvelope(
        kind=task.spec.kind,
        verdict="GO" if code == 0 else "NO-GO",
        summary=f"command exited with {code}",
        extra=extra,
        elapsed_sec=round(elapsed, 3),
    )


class CommandExecutor(ExecutorHooks):
    name = "command"

    def is_configured(self, settings: Mapping[str, Any]) -> bool:
        return bool(settings.get("argv"))

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        argv = _argv(context.settings)
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment(task, context),
            start_new_session=True,  # its own process group, so cancelling kills its children too
        )
        try:
            stdout, stderr = await process.communicate(json.dumps(task.spec.payload.to_wire()).encode())
        except BaseException:
            _kill_group(process.pid)
            await process.wait()
            raise
        assert process.returncode is not None
        return result_from(
            task,
            process.returncode,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
            time.monotonic() - started,
        )


def _argv(settings: Mapping[str, Any]) -> list[str]:
    argv = settings.get("argv")
    if not argv or not all(isinstance(part, str) for part in argv):
        raise RuntimeError(
            "the command executor has no argv configured on this worker (--command or executors.command.argv)"
        )
    return list(argv)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
