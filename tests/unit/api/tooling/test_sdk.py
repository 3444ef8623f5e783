from collections.abc import AsyncIterator
from typing import Any

from foreman.api.http.client import Relisted
from foreman.api.tooling.sdk import ForemanClient
from tests.factories import task


class FinishedTasksKube:
    def __init__(self) -> None:
        self.selectors: list[str | None] = []

    async def watch(self, model: Any, *, namespace: str | None = None, field_selector: str | None = None) -> Any:
        self.selectors.append(field_selector)
        yield Relisted([task(name, phase="Failed", namespace="ns") for name in ("mine", "other")], "1")


async def names(finished: AsyncIterator[Any]) -> list[str]:
    return [task.name async for task in finished]


async def test_waiting_for_one_task_watches_that_task_alone() -> None:
    """`wait` watched every task of the namespace to see one finish."""
    kube = FinishedTasksKube()
    client = ForemanClient(kube, "ns")  # type: ignore[arg-type]
    assert await names(client.as_completed(["mine"], timeout=5)) == ["mine"]
    assert await names(client.as_completed(["mine", "other"], timeout=5)) == ["mine", "other"]
    assert kube.selectors == ["metadata.name=mine", None]
