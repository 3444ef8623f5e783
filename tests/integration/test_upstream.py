"""Results flow along dependsOn: a dependant's payload quotes its upstream's envelope, resolved by the worker when it
claims the task, against the real apiserver."""

import uuid
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.models.agents import Agent
from foreman.api.models.envelope import ResultEnvelope
from foreman.api.models.tasks import AgenticTask
from foreman.worker.executors.base import ExecutionContext
from foreman.worker.executors.stub import StubExecutor
from tests.integration.helpers import make_task, phase_is, running_controller, running_worker, wait_for


class EchoExecutor:
    """Says back the payload it was given, and what it was told of its upstreams."""

    name = "echo"

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        told = {name: envelope.verdict if envelope else None for name, envelope in context.upstreams.items()}
        payload = task.spec.payload
        return ResultEnvelope(kind=task.spec.kind, verdict="GO", summary=payload.prompt or "",
                              extra={"inputs": payload.inputs, "told": told})  # fmt: skip


async def test_a_dependant_gets_its_upstreams_results_in_its_payload_and_a_missing_one_fails_it(
    kube: Kube, namespace: str
) -> None:
    node = f"up-{uuid.uuid4().hex[:6]}"
    plugins: dict[str, Any] = {"stub": StubExecutor, "echo": EchoExecutor}
    await kube.create(Agent.model_validate({"metadata": {"name": "heir", "namespace": namespace},
                                            "spec": {"inheritUpstream": True}}))  # fmt: skip
    async with running_controller(kube, namespace), running_worker(kube, node, namespace, plugins):
        await make_task(kube, namespace, "plan", payload={"verdict": "GO"})
        await make_task(
            kube, namespace, "build", executor="echo", dependsOn=["plan"], agentRef="heir",
            payload={"prompt": "Plan: {{ upstream.plan.summary }} ({{ upstream.plan.verdict }})",
                     "inputs": {"again": ["{{ upstream.plan.verdict }}"]}},
        )  # fmt: skip
        await make_task(
            kube, namespace, "orphan", executor="echo", dependsOn=["plan"],
            payload={"prompt": "{{ upstream.plan.extra.absent }}"},
        )  # fmt: skip
        built = await wait_for(kube, namespace, "build", phase_is("Succeeded"), timeout=30)
        failed = await wait_for(kube, namespace, "orphan", phase_is("Failed"), timeout=30)
    plan = (await kube.get(AgenticTask, "plan", namespace)).status.result
    assert plan is not None
    assert built.status.result is not None
    assert built.status.result.summary == f"Plan: {plan.summary} (GO)"
    assert built.status.result.extra == {"inputs": {"again": ["GO"]}, "told": {"plan": "GO"}}
    stored = await kube.get(AgenticTask, "build", namespace)
    assert stored.spec.payload.prompt == "Plan: {{ upstream.plan.summary }} ({{ upstream.plan.verdict }})"  # as written
    assert failed.status.failure_reason == "UpstreamOutputMissing"
    assert failed.status.result is not None
    assert (
        "{{ upstream.plan.extra.absent }}: upstream plan's envelope has no extra.absent" in failed.status.result.summary
    )
