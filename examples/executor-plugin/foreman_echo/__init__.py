"""An example Foreman executor: answers with the task's prompt, reversed, as a foreman.v1 envelope.

The contract (foreman.worker.executors.base): a `name`, and `async execute(task, context)` returning a ResultEnvelope
(`Executor`). Raise to fail the task with ExecutorError; let asyncio.CancelledError through (timeout, cancel, drain).
The optional hooks are those of `ExecutorHooks`, each with a default where a class leaves it out: this one defines
`is_configured(settings)` (unconfigured executors are not advertised on the FleetNode) and keeps the defaults of
`inference_server(settings)` (it runs on no model server) and `confinement(settings)` (it starts no process).
`settings` is the executor's section of the worker's config file (`executors: {echo: {...}}`), never the task.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from foreman.api.envelope import ResultEnvelope
from foreman.api.resources import AgenticTask
from foreman.worker.executors.base import ExecutionContext, ExecutorHooks


class EchoExecutor(ExecutorHooks):
    name = "echo"

    def is_configured(self, settings: Mapping[str, Any]) -> bool:
        """`executors: {echo: {enabled: false}}` takes it off the node without uninstalling it."""
        return bool(settings.get("enabled", True))

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
