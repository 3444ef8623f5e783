"""An example Foreman executor: answers with the task's prompt, reversed, as a foreman.v1 envelope.

The contract (foreman.worker.executors.base.Executor): a `name`, and `async execute(task, context)` returning a
ResultEnvelope. Raise to fail the task with ExecutorError; let asyncio.CancelledError through (timeout, cancel,
drain). Optional `is_configured(settings)` says whether the worker's settings for it (`executors.echo` in the
worker's config file) are enough to run; unconfigured executors are not advertised.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from foreman.api.envelope import ResultEnvelope
from foreman.api.resources import AgenticTask
from foreman.worker.executors.base import ExecutionContext


class EchoExecutor:
    name = "echo"

    def is_configured(self, settings: Mapping[str, Any]) -> bool:
        return True

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        started = time.monotonic()
        prompt = task.spec.payload.prompt or ""
        return ResultEnvelope(
            kind=task.spec.kind,
            verdict="GO",
            summary=prompt[::-1],
            extra={"node": context.node_name, "attempt": context.attempt},
            elapsed_sec=round(time.monotonic() - started, 3),
        )
