import json
from pathlib import Path
from typing import Any

from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling import manifests
from foreman.api.tooling.crd import PRINTER_COLUMNS, all_crds, custom_resource_definition

MANIFESTS = Path(__file__).parents[4] / "manifests"


def walk(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, dict):
        return [schema, *(node for value in schema.values() for node in walk(value))]
    if isinstance(schema, list):
        return [node for value in schema for node in walk(value)]
    return []


def test_schemas_are_structural() -> None:
    for crd in all_crds():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        text = json.dumps(schema)
        assert "$ref" not in text
        assert "anyOf" not in text
        assert '"title"' not in text
        for node in walk(schema["properties"]["spec"]) + walk(schema["properties"].get("status", {})):
            if "properties" in node and isinstance(node.get("properties"), dict) and "type" in node:
                assert node["type"] == "object"
                assert "additionalProperties" not in node


def test_schema_carries_enums_minimums_required_and_defaults() -> None:
    task = all_crds()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = task["properties"]["spec"]
    capability = spec["properties"]["requiredCapability"]["properties"]
    assert task["required"] == ["spec"]
    assert "required" not in spec  # kind defaults to freeform, as the SDK's AgenticTask.new does
    assert spec["properties"]["kind"]["default"] == "freeform"
    assert capability["accelerator"]["enum"] == ["cuda", "metal", "rocm", "cpu", "any"]
    assert capability["minRAMGB"]["minimum"] == 0
    assert spec["properties"]["timeoutSeconds"]["default"] == 2700
    conditions = task["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "atomic"
    for crd in all_crds():
        properties = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        if crd["spec"]["names"]["kind"] == "Agent":  # a definition, nothing to report: no status, no subresource
            assert "status" not in properties
            assert crd["spec"]["versions"][0]["subresources"] == {}
        else:
            assert properties["status"]["x-kubernetes-map-type"] == "atomic"


def test_printer_columns_short_names_and_categories() -> None:
    for crd in all_crds():
        names = crd["spec"]["names"]
        assert names["categories"] == ["foreman"]
        assert names["shortNames"] in (["at"], ["fn"], ["ts"], ["ag"], ["tq"])
    assert [c["name"] for cols in PRINTER_COLUMNS.values() for c in cols] == [
        *("Phase", "Kind", "Node", "Verdict", "Age", "Tokens"),
        *("Phase", "Accelerator", "RAM", "Context", "Running", "Heartbeat", "Age"),
        *("Model", "MaxTurns", "Tools", "Age"),
        *("Weight", "Running", "Pending", "Max", "Age"),
        *("Schedule", "TimeZone", "Suspend", "Active", "Last", "Next", "Age"),
    ]


def test_a_schedule_name_must_fit_a_label_value() -> None:
    """Its tasks carry the name in label foreman.dev/schedule, so the API itself refuses longer names."""
    schedule = custom_resource_definition(TaskSchedule)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schedule["properties"]["metadata"]["properties"]["name"]["maxLength"] == 63
    task = custom_resource_definition(AgenticTask)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert task["properties"]["metadata"] == {"type": "object"}


def test_checked_in_manifests_match_the_models() -> None:
    """`make manifests` leaves no diff: the YAML under manifests/ is what the models generate."""
    for relative, documents in manifests.files().items():
        path = MANIFESTS / relative
        assert path.exists(), f"{relative} missing: run `make manifests`"
        assert path.read_text() == manifests.render(documents), f"{relative} is stale: run `make manifests`"


def test_kubectl_explain_has_a_description_for_every_spec_field_with_its_values() -> None:
    """`kubectl explain agentictask.spec` had no descriptions for most fields and listed no enum values."""
    schema = custom_resource_definition(AgenticTask)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    undescribed = [name for name, field in spec["properties"].items() if not field.get("description")]
    assert undescribed == []
    capability = spec["properties"]["requiredCapability"]["properties"]
    assert [name for name, field in capability.items() if not field.get("description")] == []
    assert capability["accelerator"]["description"].endswith("One of: cuda, metal, rocm, cpu, any.")


def test_taskschedule_columns_show_a_count_and_a_time_not_a_list_and_an_age() -> None:
    """`kubectl get ts` showed ACTIVE as [] and NEXT (a future time in a date column) as <invalid>."""
    columns = {column["name"]: column for column in PRINTER_COLUMNS[TaskSchedule]}
    assert (columns["Active"]["type"], columns["Active"]["jsonPath"]) == ("integer", ".status.activeCount")
    assert columns["Next"]["type"] == "string"
