"""Generate CustomResourceDefinitions from the pydantic models (the one source of truth for the schemas).

Kubernetes wants a *structural* OpenAPI v3 schema: no $ref, no anyOf for optional fields, a type on every node
(unless unknown fields are preserved), and properties never beside additionalProperties. This module turns
pydantic's JSON Schema into that, as a pure function, so `make manifests` and the tests share it.
"""

from __future__ import annotations

from typing import Any

from foreman.api.models.agents import Agent
from foreman.api.models.base import GROUP, VERSION, Resource
from foreman.api.models.kinds import RESOURCES
from foreman.api.models.nodes import FleetNode
from foreman.api.models.queues import TaskQueue
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask

JsonSchema = dict[str, Any]

CATEGORY = "foreman"

PRINTER_COLUMNS: dict[type[Resource], list[dict[str, Any]]] = {
    AgenticTask: [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Kind", "type": "string", "jsonPath": ".spec.kind"},
        {"name": "Node", "type": "string", "jsonPath": ".status.assignedNode"},
        {"name": "Verdict", "type": "string", "jsonPath": ".status.verdict"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Tokens", "type": "integer", "jsonPath": ".status.usage.totalTokens", "priority": 1},
    ],
    FleetNode: [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Accelerator", "type": "string", "jsonPath": ".status.capability.accelerator"},
        {"name": "RAM", "type": "number", "jsonPath": ".status.capability.availableRAMGB"},
        {"name": "Context", "type": "integer", "jsonPath": ".status.capability.maxContextTokens"},
        {"name": "Running", "type": "integer", "jsonPath": ".status.runningTasks"},
        {"name": "Heartbeat", "type": "date", "jsonPath": ".status.lastHeartbeatTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    Agent: [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
        {"name": "MaxTurns", "type": "integer", "jsonPath": ".spec.maxTurns"},
        {"name": "Tools", "type": "string", "jsonPath": ".spec.tools", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    TaskQueue: [
        {"name": "Weight", "type": "number", "jsonPath": ".spec.weight"},
        {"name": "Running", "type": "integer", "jsonPath": ".status.running"},
        {"name": "Pending", "type": "integer", "jsonPath": ".status.pending"},
        {"name": "Max", "type": "integer", "jsonPath": ".spec.maxRunning"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    TaskSchedule: [
        {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
        {"name": "TimeZone", "type": "string", "jsonPath": ".spec.timeZone"},
        {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
        # NB: a count (a list column prints as "[]"), and Next as a time: a "date" column shows an age, and a time
        # in the future as <invalid>
        {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount"},
        {"name": "Last", "type": "date", "jsonPath": ".status.lastScheduleTime"},
        {"name": "Next", "type": "string", "jsonPath": ".status.nextScheduleTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}


def structural(schema: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    """Rewrite one pydantic JSON Schema node (and its children) into a Kubernetes structural schema node."""
    node = dict(schema)
    while "$ref" in node or "anyOf" in node:
        if "$ref" in node:
            target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**target, **node}  # sibling keys (default, description) win over the referenced definition
        else:
            # Optional[X] is the only union we model: on the wire "absent" stands for None.
            variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
            if len(variants) != 1:
                raise ValueError(f"only Optional[X] unions map to a structural schema, got {variants}")
            node = {**variants[0], **node}
    node.pop("title", None)
    if "default" in node:
        # NB: the apiserver validates defaults against the schema; a null or "" (v1.20 reads it as null) fails,
        # and leaving such a default out changes nothing: the models fill it in.
        default = _without_nulls(node.pop("default"))
        if default is not None and default != "":
            node["default"] = default
    if "const" in node:
        node["enum"] = [node.pop("const")]
        node.setdefault("type", "string")
    if "enum" in node:
        # NB: `kubectl explain` prints descriptions, not enums: name the values there too
        said = node.get("description", "").rstrip(".")
        choices = "One of: " + ", ".join(str(value) for value in node["enum"]) + "."
        node["description"] = f"{said}. {choices}" if said else choices

    for bound in ("Minimum", "Maximum"):
        # NB: JSON Schema 2020 (pydantic's `gt`) gives the bound itself; OpenAPI v3.0 a flag beside minimum/maximum
        if isinstance(node.get(f"exclusive{bound}"), int | float):
            node[bound.lower()], node[f"exclusive{bound}"] = node[f"exclusive{bound}"], True
    if isinstance(keys := node.pop("propertyNames", None), dict) and "enum" in keys:
        # NB: a structural schema cannot constrain map keys; a CEL rule can (servers without CEL take any key)
        allowed = ", ".join(f"'{key}'" for key in keys["enum"])
        message = "keys must be one of: " + ", ".join(keys["enum"])
        node.setdefault("x-kubernetes-validations", []).append(
            {"rule": f"self.all(k, k in [{allowed}])", "message": message}
        )

    if node.get("type") == "object" or "properties" in node:
        node["type"] = "object"
        extra = node.pop("additionalProperties", None)
        if "properties" in node:
            node["properties"] = {k: structural(v, defs) for k, v in node["properties"].items()}
            if extra is True:
                node["x-kubernetes-preserve-unknown-fields"] = True
        elif extra is True or extra == {}:
            node["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            node["additionalProperties"] = structural(extra, defs)
    elif node.get("type") == "array":
        node["items"] = structural(node["items"], defs)
    elif "type" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True  # typing.Any
    return node


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and v != ""}
    return value


def metadata_schema(model: type[Resource]) -> JsonSchema:
    """Kubernetes lets a CRD restrict only metadata.name; we do where the name must also fit a label value."""
    if model.max_name_length is None:
        return {"type": "object"}
    return {"type": "object", "properties": {"name": {"type": "string", "maxLength": model.max_name_length}}}


def openapi_schema(model: type[Resource]) -> JsonSchema:
    """The openAPIV3Schema of a resource: spec and status from the model, the envelope fields as Kubernetes has them."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    properties = raw["properties"]
    schema: JsonSchema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": metadata_schema(model),
            "spec": structural(properties["spec"], defs),
        },
    }
    if "status" in properties:
        # NB: an empty default makes the apiserver fill in the nested defaults (a new task reads Pending).
        # Atomic: ownership of status is tracked as one field, not field by field (docs/design.md, Status).
        status = {**structural(properties["status"], defs), "default": {}, "x-kubernetes-map-type": "atomic"}
        schema["properties"]["status"] = status
    if "description" in raw:
        schema["description"] = raw["description"]
    if "x-kubernetes-validations" in raw:
        schema["x-kubernetes-validations"] = raw["x-kubernetes-validations"]  # the resource's own rules (Rule)
    if "spec" in raw.get("required", []):
        schema["required"] = ["spec"]
    return schema


def custom_resource_definition(model: type[Resource]) -> JsonSchema:
    kind = model.model_fields["kind"].default
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{model.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if model.namespaced else "Cluster",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": model.plural,
                "singular": model.singular,
                "shortNames": [model.short_name],
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}} if "status" in model.model_fields else {},
                    "additionalPrinterColumns": PRINTER_COLUMNS[model],
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                    **(
                        {"selectableFields": [{"jsonPath": path} for path in model.selectable_fields]}
                        if model.selectable_fields
                        else {}
                    ),
                }
            ],
        },
    }


def all_crds() -> list[JsonSchema]:
    return [custom_resource_definition(model) for model in RESOURCES]
