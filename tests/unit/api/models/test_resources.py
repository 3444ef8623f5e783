from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from foreman.api.models.agents import Agent
from foreman.api.models.base import set_condition
from foreman.api.models.envelope import EXTRA_DEPTH, ResultEnvelope, bounded, depth
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.api.models.validation import describe
from tests.malformed import CORPUS, Malformed

EXAMPLES = sorted(Path(__file__).parents[4].joinpath("examples").glob("*.yaml"))
MODELS = {
    "AgenticTask": AgenticTask,
    "FleetNode": FleetNode,
    "TaskSchedule": TaskSchedule,
    "Agent": Agent,
    "TaskQueue": TaskQueue,
}


def example_documents() -> list[dict[str, object]]:
    return [doc for path in EXAMPLES for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_malformed_object_is_rejected_naming_the_field(case: Malformed) -> None:
    with pytest.raises(ValidationError) as caught:
        MODELS[case.resource].model_validate(case.body())
    message = describe(caught.value)
    assert case.path in message or message.startswith(case.path.rsplit(".", 1)[0] + ".")
    assert "\n" not in message


def test_every_example_parses_and_round_trips() -> None:
    documents = example_documents()
    assert len(documents) >= 8
    for document in documents:
        model = MODELS[document["kind"]]  # type: ignore[index]
        parsed = model.model_validate(document)
        assert model.model_validate(parsed.to_wire()) == parsed


def test_wire_names_are_kubernetes_camel_case() -> None:
    task = AgenticTask.model_validate(
        {"metadata": {"name": "a"}, "spec": {"kind": "verify", "requiredCapability": {"minRAMGB": 4}}}
    )
    wire = task.to_wire()
    assert wire["spec"]["requiredCapability"] == {
        "accelerator": "any",
        "minRAMGB": 4.0,
        "minContextTokens": 0,
        "nodeSelector": {},
        "sandbox": False,
    }
    assert wire["spec"]["timeoutSeconds"] == 2700
    assert task.spec.required_capability.min_ramgb == 4
    node = FleetNode.model_validate({"metadata": {"name": "n"}, "status": {"capability": {
        "modelMemoryGB": 24, "models": [{"name": "m", "sizeGB": 4.7, "loadSeconds": 6.7}]}}})  # fmt: skip
    capability = node.status.capability
    assert (capability.model_memory_gb, capability.models[0].size_gb) == (24, 4.7)  # the names the README gives


def test_envelope_schema_version_is_validated() -> None:
    assert ResultEnvelope(kind="verify", verdict="GO").to_wire()["schemaVersion"] == "foreman.v1"
    with pytest.raises(ValidationError, match="schemaVersion"):
        ResultEnvelope.model_validate({"schemaVersion": "other", "kind": "verify", "verdict": "GO"})


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = set_condition([], type="Blocked", status="True", reason="A", now=t0)
    same = set_condition(first, type="Blocked", status="True", reason="B", now=t0 + timedelta(seconds=5))
    flipped = set_condition(same, type="Blocked", status="False", reason="C", now=t0 + timedelta(seconds=9))
    assert [c.last_transition_time for c in (*first, *same, *flipped)] == [t0, t0, t0 + timedelta(seconds=9)]
    assert [c.reason for c in flipped] == ["C"]


def test_an_envelope_extra_too_large_or_too_deep_is_cut_before_it_is_written() -> None:
    deep: dict[str, Any] = {}
    for _ in range(900):
        deep = {"a": deep}
    envelope = ResultEnvelope(kind="freeform", verdict="GO", extra={"usage": {"t": 1}, "blob": "x" * 1_600_000,
                                                                     "deep": deep, "fine": [1, 2]})  # fmt: skip
    cut = bounded(envelope)
    assert cut.extra["usage"] == {"t": 1}
    assert cut.extra["fine"] == [1, 2]
    assert "blob" not in cut.extra
    assert "deep" not in cut.extra
    assert cut.extra["dropped"] == "too large or too deep to store: blob, deep"
    assert bounded(cut) == cut
    assert depth(deep) == EXTRA_DEPTH + 1  # stops counting once over
    assert (depth(1), depth([]), depth({"a": [1]})) == (0, 1, 2)
