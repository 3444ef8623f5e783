"""A planner: one fan-out / fan-in graph submitted from Python, results printed as tasks finish.

foreman dev up && export KUBECONFIG=~/.foreman/dev/kubeconfig   # plus a controller and a worker
python examples/planner.py [NAMESPACE]
"""

import asyncio
import sys
import time

from foreman.api.resources import AgenticTask
from foreman.api.sdk import ForemanClient, TaskFailed


async def main(namespace: str) -> int:
    run = time.strftime("%H%M%S")
    questions = ["queue", "cache", "database"]
    plan = AgenticTask.new(
        f"plan-{run}", prompt="Split the migration into research questions.", payload={"sleepSeconds": 0.5}
    )
    research = [
        AgenticTask.new(
            f"research-{q}-{run}",
            prompt=f"How do we migrate the {q}?",
            depends_on=[plan.name],
            payload={"sleepSeconds": 0.5},
        )
        for q in questions
    ]
    report = AgenticTask.new(
        f"report-{run}", kind="review", prompt="Merge the answers into one plan.", depends_on=[t.name for t in research]
    )
    async with await ForemanClient.connect(namespace=namespace) as foreman:
        await foreman.submit_graph([report, *research, plan])  # any order: created upstream first
        async for task in foreman.as_completed([plan.name, *(t.name for t in research), report.name], timeout=300):
            summary = task.status.result.summary if task.status.result else task.status.failure_reason
            print(f"{task.name}: {task.phase} {task.status.verdict} on {task.status.assigned_node}: {summary}")
        try:
            envelope = await foreman.wait(report.name, timeout=10)
        except TaskFailed as failure:
            print(f"the report failed: {failure.reason}")
            return 1
    print(f"final verdict: {envelope.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "default")))
