import pytest

from foreman.api.http import requests
from foreman.api.http.errors import (
    RETRYABLE,
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    NotServed,
    ServerError,
    error_from_response,
)
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from tests.factories import T0


def test_paths_for_namespaced_and_cluster_resources() -> None:
    assert requests.resource_path(AgenticTask) == "/apis/foreman.dev/v1alpha1/agentictasks"
    assert (
        requests.resource_path(AgenticTask, namespace="ns", name="a", subresource="status")
        == "/apis/foreman.dev/v1alpha1/namespaces/ns/agentictasks/a/status"
    )
    assert requests.resource_path(FleetNode, name="n") == "/apis/foreman.dev/v1alpha1/fleetnodes/n"
    with pytest.raises(ValueError, match="cluster-scoped"):
        requests.resource_path(FleetNode, namespace="ns")


def test_status_patch_carries_the_resource_version_precondition() -> None:
    request = requests.merge_patch(
        AgenticTask, "a", {"status": {"phase": "Running"}}, namespace="ns", resource_version="42", subresource="status"
    )
    assert request.method == "PATCH"
    assert request.content_type == "application/merge-patch+json"
    assert request.body == {"status": {"phase": "Running"}, "metadata": {"resourceVersion": "42"}}


def test_watch_resumes_from_a_resource_version_with_bookmarks() -> None:
    request = requests.watch(AgenticTask, resource_version="7", timeout_seconds=30, label_selector="foreman.dev/node=x")
    assert request.query == {
        "labelSelector": "foreman.dev/node=x",
        "watch": "true",
        "resourceVersion": "7",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "30",
    }


def test_a_watch_of_a_built_in_kind_selects_one_object_by_field() -> None:
    request = requests.watch_objects(
        "v1", "ConfigMap", resource_version="9", timeout_seconds=30, namespace="ns", field_selector="metadata.name=x"
    )
    assert request.path == "/api/v1/namespaces/ns/configmaps"
    assert request.query == {
        "fieldSelector": "metadata.name=x",
        "watch": "true",
        "resourceVersion": "9",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "30",
    }


def test_create_with_generate_name_is_not_idempotent() -> None:
    named = AgenticTask.model_validate({"metadata": {"name": "a", "namespace": "n"}, "spec": {"kind": "verify"}})
    generated = AgenticTask.model_validate(
        {"metadata": {"generateName": "a-", "namespace": "n"}, "spec": {"kind": "verify"}}
    )
    assert requests.create(named).idempotent
    assert not requests.create(generated).idempotent


def test_creates_ask_for_strict_field_validation() -> None:
    """A server that validates fields refuses one its CRD does not know rather than dropping it; others ignore it."""
    task = AgenticTask.model_validate({"metadata": {"name": "a", "namespace": "n"}, "spec": {"kind": "verify"}})
    assert requests.create(task).query == {"fieldValidation": "Strict"}


def test_apply_uses_a_fixed_field_manager() -> None:
    request = requests.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    assert (request.path, request.query["fieldManager"]) == ("/api/v1/namespaces/x", "foreman")
    with pytest.raises(ValueError, match="unsupported kind"):
        requests.apply({"apiVersion": "v9", "kind": "Thing", "metadata": {"name": "x"}})


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (404, "NotFound", NotFound),
        (409, "Conflict", Conflict),
        (409, "AlreadyExists", AlreadyExists),
        (410, "Expired", Gone),
        (422, "Invalid", Invalid),
        (500, "InternalError", ServerError),
        (503, "ServiceUnavailable", ServerError),
    ],
)
def test_errors_map_to_classes(status: int, reason: str, expected: type[Exception]) -> None:
    error = error_from_response(status, {"kind": "Status", "reason": reason, "message": "boom"})
    assert type(error) is expected
    assert error.message == "boom"


def test_a_resource_type_not_served_is_retryable_and_no_notfound() -> None:
    """After an apiserver restart, CRD-backed paths answer 404 until the CRDs are loaded again: not "deleted"."""
    for body in (
        "404 page not found\n",
        {"reason": "NotFound", "message": "the server could not find the requested resource"},
    ):
        error = error_from_response(404, body)
        assert isinstance(error, NotServed)
        assert isinstance(error, RETRYABLE)
        assert not isinstance(error, NotFound)


def test_an_object_too_big_for_etcd_is_refused_before_sending_with_the_limit_named() -> None:
    """A 2 MB prompt reached etcd and came back as a raw gRPC error after a retry."""
    huge = AgenticTask.new("huge", prompt="x" * 2_000_000)
    with pytest.raises(requests.ObjectTooLarge, match=r"agentictask huge is 1.9 MiB; the limit is 1 MiB per object"):
        requests.create(huge)
    assert requests.create(AgenticTask.new("big", prompt="x" * 1_000_000)).body["spec"]["payload"]["prompt"]


def test_lists_are_paginated_except_from_the_watch_cache() -> None:
    """A controller start with 100,000 tasks held one giant response."""
    first = requests.list_(AgenticTask, namespace="ns", label_selector="a=b")
    assert first.query == {"labelSelector": "a=b", "limit": str(requests.PAGE_SIZE)}
    assert requests.list_(AgenticTask, continue_="token").query == {
        "limit": str(requests.PAGE_SIZE),
        "continue": "token",
    }
    assert requests.list_(AgenticTask, cached=True).query == {"resourceVersion": "0"}


def test_every_path_comes_from_one_builder() -> None:
    assert requests.object_path("foreman.dev/v1alpha1", "AgenticTask", "a", "ns") == requests.resource_path(
        AgenticTask, namespace="ns", name="a"
    )
    assert requests.object_path("v1", "Event", None, "ns") == "/api/v1/namespaces/ns/events"
    with pytest.raises(ValueError, match="needs a namespace"):
        requests.object_path("v1", "ConfigMap", "c")
    assert requests.object_path("rbac.authorization.k8s.io/v1", "RoleBinding") == (
        "/apis/rbac.authorization.k8s.io/v1/rolebindings"  # of every namespace
    )


def test_an_event_is_a_named_create_about_its_object() -> None:
    task = AgenticTask.new("a", namespace="ns")
    request = requests.event(task, reason="NodeLost", message="m", component="c", type="Warning", now=T0, suffix="abc")
    assert (request.method, request.path, request.idempotent) == ("POST", "/api/v1/namespaces/ns/events", True)
    assert request.body["metadata"] == {"name": "a.abc", "namespace": "ns"}
    assert request.body["involvedObject"]["kind"] == "AgenticTask"
    assert (request.body["type"], request.body["firstTimestamp"]) == ("Warning", "2026-01-01T00:00:00Z")


def test_a_delete_can_name_the_object_it_read_and_otherwise_sends_no_body() -> None:
    """A finished task past its time to live is deleted only as it was decided on: not a namesake created since, not
    one changed meanwhile (409)."""
    exact = requests.delete(AgenticTask, "a", "ns", uid="u-1", resource_version="42")
    assert (exact.method, exact.path) == ("DELETE", "/apis/foreman.dev/v1alpha1/namespaces/ns/agentictasks/a")
    assert exact.body == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": {"uid": "u-1", "resourceVersion": "42"},
    }
    assert requests.delete(AgenticTask, "a", "ns").body is None
    owned = requests.delete_object("v1", "ConfigMap", "a-transcript", "ns", uid="u-2")
    assert (owned.path, owned.body["preconditions"]) == (
        "/api/v1/namespaces/ns/configmaps/a-transcript",
        {"uid": "u-2"},
    )


def test_a_token_request_is_bound_to_a_pod_only_when_one_is_named() -> None:
    unbound = requests.token_request("foreman-system", "foreman-worker", 600)
    assert unbound.path == "/api/v1/namespaces/foreman-system/serviceaccounts/foreman-worker/token"
    assert unbound.body == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": {"expirationSeconds": 600}}  # fmt: skip
    bound = requests.token_request("foreman-system", "foreman-worker", 600, pod=requests.BoundPod("w-1", "u-1"))
    assert bound.body is not None
    assert bound.body["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "w-1", "uid": "u-1"}
