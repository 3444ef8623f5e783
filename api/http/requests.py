"""Pure preparation of Kubernetes API requests: paths, query strings, bodies, content types.

Nothing here sends anything (the idea is lightkube's `prepare_request`): `foreman.api.http.client` sends what these
build, and unit tests check them without a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from foreman.api import PACKAGE_VERSION
from foreman.api.models.base import API_VERSION, GROUP, VERSION, Resource, wire_time
from foreman.api.models.kinds import RESOURCES

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON = "application/json"
FIELD_MANAGER = "foreman"
USER_AGENT = f"{FIELD_MANAGER}/{PACKAGE_VERSION}"
"""The apiserver names the field manager of a create or patch after the User-Agent up to its first "/", so every
write of ours is owned by `foreman` in managedFields (not the client generator's `OpenAPI-Generator`)."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = JSON
    idempotent: bool = True
    """False when repeating the request after a lost answer could do the work twice (create with generateName)."""


@dataclass(frozen=True)
class KindInfo:
    api_path: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool


def path(
    info: KindInfo, *, namespace: str | None = None, name: str | None = None, subresource: str | None = None
) -> str:
    """The one URL builder: a collection (of all namespaces when a namespaced kind gets none), an object, or one of
    its subresources."""
    built = info.api_path
    if info.namespaced and namespace:
        built += f"/namespaces/{namespace}"
    built += f"/{info.plural}"
    if name:
        built += f"/{name}"
        if subresource:
            built += f"/{subresource}"
    return built


def kind_of(model: type[Resource]) -> KindInfo:
    return KindInfo(f"/apis/{GROUP}/{VERSION}", model.plural, model.namespaced)


def resource_path(
    model: type[Resource], *, namespace: str | None = None, name: str | None = None, subresource: str | None = None
) -> str:
    """The URL path of a Foreman resource collection, object or subresource."""
    if not model.namespaced and namespace:
        raise ValueError(f"{model.__name__} is cluster-scoped; got namespace {namespace!r}")
    return path(kind_of(model), namespace=namespace, name=name, subresource=subresource)


def get(model: type[Resource], name: str, namespace: str | None = None) -> Request:
    return Request("GET", resource_path(model, namespace=namespace, name=name))


PAGE_SIZE = 500
"""Objects per LIST page (client-go's default): a start with 100,000 tasks never holds one giant response."""


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    return {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}


def list_(
    model: type[Resource],
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    cached: bool = False,
    continue_: str | None = None,
) -> Request:
    """One page of a list; `continue_` is the token the previous page ended with.

    NB: a list from the watch cache (`cached`) is one answer: the apiserver pages only lists it reads from etcd."""
    query = _selectors(label_selector, field_selector)
    if cached:
        query["resourceVersion"] = "0"  # any version the watch cache has: served from memory
    else:
        query["limit"] = str(PAGE_SIZE)
        if continue_:
            query["continue"] = continue_
    return Request("GET", resource_path(model, namespace=namespace), query=query)


def watch(
    model: type[Resource],
    *,
    resource_version: str,
    timeout_seconds: int,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> Request:
    path = resource_path(model, namespace=namespace)
    return _watching(path, _selectors(label_selector, field_selector), resource_version, timeout_seconds)


def _watching(path: str, selectors: dict[str, str], resource_version: str, timeout_seconds: int) -> Request:
    """The watch of a collection, from a resourceVersion, with bookmarks; the server ends it after the timeout (the
    client then resumes). Never paged: a watch is one stream."""
    query = {
        **selectors,
        "watch": "true",
        "resourceVersion": resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(timeout_seconds),
    }
    return Request("GET", path, query=query)


MAX_OBJECT_BYTES = 1024 * 1024
"""The largest object we create. etcd refuses a write over 1.5 MiB (its default --max-request-bytes) with a raw gRPC
error, and a task grows after its create (status, result envelope, managedFields): big inputs belong elsewhere (a
repository, an object store) with a reference in the payload."""


class ObjectTooLarge(ValueError):
    """Refused before sending: the object is bigger than `MAX_OBJECT_BYTES`."""


def creatable_body(obj: Resource) -> dict[str, Any]:
    """The body that creates `obj`; ObjectTooLarge, with the limit named, when the API could not store it."""
    body = obj.to_wire()
    size = len(json.dumps(body, separators=(",", ":")).encode())
    if size > MAX_OBJECT_BYTES:
        what = f"{obj.singular} {obj.metadata.name or obj.metadata.generate_name or ''}".rstrip()
        raise ObjectTooLarge(
            f"{what} is {size / 1024 / 1024:.1f} MiB; the limit is {MAX_OBJECT_BYTES // 1024 // 1024} MiB per object "
            "(etcd stores at most 1.5 MiB per write): put big inputs in a repository or object store and pass a "
            "reference (payload.repo, payload.inputs)"
        )
    return body


def create(obj: Resource) -> Request:
    """NB: `fieldValidation=Strict` makes a server that has it (Kubernetes >= 1.25; GA in 1.27) refuse a field its
    installed CRD does not know (one our newer models send) instead of dropping it; older servers ignore the
    parameter. A user's typo never gets this far: `foreman.api.models.validation.unknown_fields` refuses it first."""
    body = creatable_body(obj)
    return Request(
        "POST",
        resource_path(type(obj), namespace=obj.metadata.namespace),
        query={"fieldValidation": "Strict"},
        body=body,
        idempotent=obj.metadata.name is not None,
    )


def merge_patch(
    model: type[Resource],
    name: str,
    patch: dict[str, Any],
    *,
    namespace: str | None = None,
    resource_version: str | None = None,
    subresource: str | None = None,
) -> Request:
    """A JSON merge patch; with a resourceVersion, the server applies it only if the object is unchanged (409
    otherwise): optimistic concurrency in one round trip."""
    body = dict(patch)
    if resource_version is not None:
        body["metadata"] = {**body.get("metadata", {}), "resourceVersion": resource_version}
    path = resource_path(model, namespace=namespace, name=name, subresource=subresource)
    return Request("PATCH", path, body=body, content_type=MERGE_PATCH)


def delete(
    model: type[Resource],
    name: str,
    namespace: str | None = None,
    *,
    uid: str | None = None,
    resource_version: str | None = None,
) -> Request:
    """With `uid` / `resource_version`, only that object as it was read is deleted (409 otherwise): not a namesake
    created since, nor one changed meanwhile."""
    path = resource_path(model, namespace=namespace, name=name)
    return Request("DELETE", path, body=_deleting(uid, resource_version))


def _deleting(uid: str | None, resource_version: str | None) -> dict[str, Any] | None:
    preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v is not None}
    return {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": preconditions} if preconditions else None


# The kinds `foreman install` applies; anything else in a manifest is a programming error, caught by the tests.
KNOWN_KINDS: dict[tuple[str, str], KindInfo] = {
    ("v1", "Namespace"): KindInfo("/api/v1", "namespaces", False),
    ("v1", "ServiceAccount"): KindInfo("/api/v1", "serviceaccounts", True),
    ("v1", "Secret"): KindInfo("/api/v1", "secrets", True),
    ("v1", "ConfigMap"): KindInfo("/api/v1", "configmaps", True),
    ("v1", "Event"): KindInfo("/api/v1", "events", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): KindInfo(
        "/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False
    ),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): KindInfo(
        "/apis/rbac.authorization.k8s.io/v1", "clusterroles", False
    ),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): KindInfo(
        "/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False
    ),
    ("rbac.authorization.k8s.io/v1", "Role"): KindInfo("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): KindInfo(
        "/apis/rbac.authorization.k8s.io/v1", "rolebindings", True
    ),
    ("apps/v1", "Deployment"): KindInfo("/apis/apps/v1", "deployments", True),
    ("apps/v1", "DaemonSet"): KindInfo("/apis/apps/v1", "daemonsets", True),
    ("coordination.k8s.io/v1", "Lease"): KindInfo("/apis/coordination.k8s.io/v1", "leases", True),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): KindInfo(
        "/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies", False
    ),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"): KindInfo(
        "/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings", False
    ),
    **{(API_VERSION, model.__name__): kind_of(model) for model in RESOURCES},
}


def object_path(api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
    """Path of any known built-in object (or its collection when name is None: of every namespace without one)."""
    try:
        info = KNOWN_KINDS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"unsupported kind {api_version}/{kind}") from None
    if info.namespaced and not namespace and name is not None:
        raise ValueError(f"{kind} {name} needs a namespace")
    return path(info, namespace=namespace, name=name)


def apply(body: dict[str, Any]) -> Request:
    """Server-side apply of one manifest; the field manager is fixed so the safe thing is the only thing."""
    meta = body.get("metadata", {})
    path = object_path(body["apiVersion"], body["kind"], meta["name"], meta.get("namespace"))
    return Request(
        "PATCH", path, query={"fieldManager": FIELD_MANAGER, "force": "true"}, body=body, content_type=APPLY_PATCH
    )


@dataclass(frozen=True)
class BoundPod:
    """The Pod a token is bound to: the apiserver puts its Node into the token's user info, and the token dies with
    it (as a DaemonSet pod's projected token does)."""

    name: str
    uid: str


def token_request(namespace: str, service_account: str, seconds: int, *, pod: BoundPod | None = None) -> Request:
    """A TokenRequest: a fresh token of a ServiceAccount, valid `seconds` (the apiserver may shorten it), bound to
    `pod` when given, else to no object. Not idempotent: each call mints another token."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if pod is not None:
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    path = object_path("v1", "ServiceAccount", service_account, namespace) + "/token"
    return Request("POST", path, body=body)


def create_object(body: dict[str, Any]) -> Request:
    meta = body.get("metadata", {})
    return Request(
        "POST",
        object_path(body["apiVersion"], body["kind"], None, meta.get("namespace")),
        body=body,
        idempotent="name" in meta,
    )


def event(
    obj: Resource,
    *,
    reason: str,
    message: str,
    component: str,
    type: str,
    now: datetime,
    suffix: str,
) -> Request:
    """Create a core/v1 Event about `obj`; `suffix` makes its name unique (a named create: safe to retry)."""
    namespace = obj.metadata.namespace or "default"
    moment = wire_time(now)
    return create_object(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{obj.name}.{suffix}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.api_version,
                "kind": obj.kind,
                "name": obj.name,
                "namespace": obj.metadata.namespace,
                "uid": obj.metadata.uid,
                "resourceVersion": obj.metadata.resource_version,
            },
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": component},
            "firstTimestamp": moment,
            "lastTimestamp": moment,
            "count": 1,
            "reportingComponent": component,
        }
    )


def list_objects(
    api_version: str,
    kind: str,
    namespace: str | None = None,
    field_selector: str | None = None,
    label_selector: str | None = None,
) -> Request:
    path = object_path(api_version, kind, None, namespace)
    return Request("GET", path, query=_selectors(label_selector, field_selector))


def watch_objects(
    api_version: str,
    kind: str,
    *,
    resource_version: str,
    timeout_seconds: int,
    namespace: str | None = None,
    field_selector: str | None = None,
) -> Request:
    """A watch of a built-in kind (as `watch` for our resources)."""
    path = object_path(api_version, kind, None, namespace)
    return _watching(path, _selectors(None, field_selector), resource_version, timeout_seconds)


def get_object(api_version: str, kind: str, name: str, namespace: str | None = None) -> Request:
    return Request("GET", object_path(api_version, kind, name, namespace))


def delete_object(
    api_version: str, kind: str, name: str, namespace: str | None = None, *, uid: str | None = None
) -> Request:
    """Delete a built-in object; with `uid`, only that one (not a namesake created since)."""
    return Request("DELETE", object_path(api_version, kind, name, namespace), body=_deleting(uid, None))


def replace_object(body: dict[str, Any]) -> Request:
    """PUT: carries metadata.resourceVersion, so it is an optimistic write (409 when stale)."""
    meta = body["metadata"]
    return Request("PUT", object_path(body["apiVersion"], body["kind"], meta["name"], meta.get("namespace")), body=body)
