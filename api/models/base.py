"""Base model and shared Kubernetes shapes: object metadata and conditions.

Every resource model parses the wire format (camelCase) once where data enters and is plain, immutable data after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
"""A Kubernetes object name (an RFC 1123 subdomain)."""


def _wire_name(name: str) -> str:
    # NB: Kubernetes spells acronyms in caps (minRAMGB, totalRAMGB, sizeGB, modelMemoryGB), which to_camel cannot guess.
    camel = to_camel(name).replace("Ramgb", "RAMGB")
    return camel[:-2] + "GB" if camel.endswith("Gb") else camel


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, written once for both sides: `cel` goes into the CRD as an `x-kubernetes-validations` entry
    on the model's schema node (the apiserver refuses a breaking object with 422, Kubernetes >= 1.25), `holds` is the
    same check on the model, and both refuse with `message`, which starts with the wire path of the field to fix."""

    cel: str
    message: str
    holds: Callable[[Any], bool]


DECODE_ERROR = "foreman.dev/decode-error"
"""Annotation the HTTP layer puts on an object part of which was nested too deep to decode, saying what: such a task
is failed (reason Undecodable), never run."""

STORED: dict[str, Any] = {"stored": True}
"""Validation context for objects read back from the apiserver: the cross-field rules are not checked there. What the
server stored is a fact to handle (an object created on a server without CEL, or before a rule existed), not input to
refuse: the controller still reads a self-dependent task and fails it with DependencyCycle."""


class Model(BaseModel):
    """Immutable model with camelCase wire names; unknown fields are ignored so a newer CRD never breaks us."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=_wire_name),
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()
    """Cross-field rules of this model (see Rule); checked on input, emitted into the CRD by foreman.api.tooling.crd."""

    @model_validator(mode="after")
    def _rules_hold(self, info: ValidationInfo) -> Self:
        if not (info.context or {}).get("stored"):
            for rule in self.rules:
                if not rule.holds(self):
                    raise ValueError(rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.rules:
            node = handler.resolve_ref_schema(schema)
            node["x-kubernetes-validations"] = [{"rule": rule.cel, "message": rule.message} for rule in cls.rules]
        return schema

    def to_wire(self) -> dict[str, Any]:
        """The JSON body Kubernetes expects: camelCase, no nulls, no empty strings (see `without_empty_strings`)."""
        return without_empty_strings(self.model_dump(mode="json", by_alias=True, exclude_none=True))


def without_empty_strings(body: dict[str, Any]) -> dict[str, Any]:
    """Drop "" values (in nested maps and lists of maps too). Absent and "" mean the same to our models, and the local
    kube-apiserver built from Debian's source decodes "" in a custom resource as null and rejects it
    (docs/design.md)."""
    return {key: _cleaned(value) for key, value in body.items() if value != ""}


def _cleaned(value: Any) -> Any:
    if isinstance(value, dict):
        return without_empty_strings(value)
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def wire_time(moment: datetime) -> str:
    """A time as the Kubernetes API writes it (RFC 3339, `Z` for UTC)."""
    return moment.isoformat().replace("+00:00", "Z")


def is_newer(candidate: str | None, current: str | None) -> bool:
    """Whether a resourceVersion is newer. NB: opaque by contract, but etcd's are increasing integers, and an
    answer to our own write must not be overwritten by an older watch event that arrives after it."""
    if current is None or candidate is None:
        return True
    try:
        return int(candidate) > int(current)
    except ValueError:
        return candidate != current


class OwnerReference(Model):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Model):
    """The parts of metadata we read or write; managedFields and friends are dropped on purpose (memory)."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    finalizers: list[str] = Field(default_factory=list)
    owner_references: list[OwnerReference] = Field(default_factory=list)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """The standard Kubernetes condition shape (metav1.Condition)."""

    type: str
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        # NB: atomic, not a list-map keyed by type: every writer replaces the whole list (a merge patch does anyway),
        # and a list-map makes the apiserver track ownership per condition in managedFields, which measured 1.6-2x
        # the CPU of every status write of a task with five conditions (docs/design.md, "Conditions").
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    ),
]


def set_condition(
    conditions: list[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return conditions with one condition of this type, keeping lastTransitionTime if the status did not change."""
    previous = find_condition(conditions, type)
    transition = previous.last_transition_time if previous and previous.status == status else now
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    return [updated if c.type == type else c for c in conditions] if previous else [*conditions, updated]


def find_condition(conditions: list[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)


GROUP = "foreman.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DnsName = ObjectName


class Resource(Model):
    """What every resource has; subclasses say where they live in the API."""

    plural: ClassVar[str]
    singular: ClassVar[str]
    short_name: ClassVar[str]
    namespaced: ClassVar[bool]
    selectable_fields: ClassVar[tuple[str, ...]] = ()
    """JSON paths a field selector may name (CRD selectableFields, Kubernetes >= 1.31)."""
    max_name_length: ClassVar[int | None] = None
    """Set where the name must fit somewhere shorter than the API's 253 characters (a label value)."""

    api_version: str = API_VERSION
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        assert self.metadata.name is not None, "a resource read from the API always has a name"
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace


Key = tuple[str, str]
"""(namespace, name); "" as the namespace of a cluster-scoped object."""


def key_of(obj: Resource) -> Key:
    return (obj.namespace or "", obj.name)
