"""`stub`: sleeps `payload.sleepSeconds` and returns a verdict (GO unless `payload.verdict` says otherwise).

For demos and benchmarks: no work, real protocol.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import TypeAdapter

from foreman.api.models.envelope import ResultEnvelope, Verdict
from foreman.api.models.tasks import AgenticTask
from foreman.worker.executors.base import ExecutionContext

_verdict = TypeAdapter(Verdict)


class StubExecutor:
    name = "stub"

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        extra = task.spec.payload.model_extra or {}
        seconds = float(extra.get("sleepSeconds", 0))
        verdict = _verdict.validate_python(extra.get("verdict", "GO"))
        started = time.monotonic()
        await asyncio.sleep(seconds)
        return ResultEnvelope(
            kind=task.spec.kind,
            verdict=verdict,
            summary=f"stub finished after {seconds:g} s on {context.node_name}",
            elapsed_sec=round(time.monotonic() - started, 3),
        )
