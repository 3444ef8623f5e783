"""The pure parts of joining hosts: names, durations, the node's kubeconfig, who holds a FleetNode, when it drained."""

import base64
import shlex
from datetime import UTC, datetime, timedelta

import pytest

from foreman.api.http.transport import ServerTrust
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling import nodes
from foreman.api.tooling.manifests import NAMESPACE, PINNED_WORKER_PREFIX, WORKER, pinned_worker_rbac
from foreman.cli.nodes import node_rows

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TRUST = ServerTrust("https://10.0.0.1:6443", verifies=True, certificate_authority=b"-----BEGIN CERTIFICATE-----\n")


def node(name: str = "gpu-01", **fields: object) -> FleetNode:
    return FleetNode.model_validate({"metadata": {"name": name}, **fields})


def test_node_names_are_dns_labels_short_enough_for_their_identity() -> None:
    for good in ("gpu-01", "m", "a" * nodes.MAX_NODE_NAME, "0box"):
        nodes.check_node_name(good)
    for bad in ("GPU", "gpu_01", "-gpu", "gpu-", "", "a" * (nodes.MAX_NODE_NAME + 1), "gpu.01", "gpu 01"):
        with pytest.raises(nodes.JoinRefused, match="DNS label"):
            nodes.check_node_name(bad)


def test_durations_read_as_kubectl_writes_them() -> None:
    assert nodes.parse_duration("720h") == timedelta(hours=720)
    assert nodes.parse_duration("1h30m") == timedelta(minutes=90)
    assert nodes.parse_duration("90s") == timedelta(seconds=90)
    assert nodes.parse_duration("3600") == timedelta(hours=1)
    for bad in ("", "1d", "h", "-1h", "1.5h", "1h 30m"):
        with pytest.raises(nodes.JoinRefused, match="duration"):
            nodes.parse_duration(bad)


def test_the_nodes_kubeconfig_carries_the_server_the_ca_and_only_the_nodes_token() -> None:
    config = nodes.node_kubeconfig(TRUST, "gpu-01", "t0ken")
    cluster = config["clusters"][0]["cluster"]
    assert cluster == {
        "server": TRUST.server,
        "certificate-authority-data": base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode(),
    }
    assert config["users"] == [{"name": "foreman-worker-gpu-01", "user": {"token": "t0ken"}}]
    system_trust = nodes.node_kubeconfig(ServerTrust(TRUST.server, True, None), "gpu-01", "t")
    assert system_trust["clusters"][0]["cluster"] == {"server": TRUST.server}  # a public CA: the host's trust store
    with pytest.raises(nodes.JoinRefused, match="insecure-skip-tls-verify"):
        nodes.node_kubeconfig(ServerTrust(TRUST.server, False, None), "gpu-01", "t")


def test_the_hosts_command_line_is_quoted_for_a_shell() -> None:
    command = nodes.worker_command("gpu-01", "/tmp/my dir/k", accelerator="cuda", labels={"pool": "a b", "zone": "x"})
    assert shlex.split(command) == [
        "foreman", "worker", "--kubeconfig", "/tmp/my dir/k", "--node-name", "gpu-01", "--accelerator", "cuda",
        "--label", "pool=a b", "--label", "zone=x",
    ]  # fmt: skip


def test_a_fleetnode_is_joinable_only_when_its_own_identity_holds_it() -> None:
    own = f"{PINNED_WORKER_PREFIX}gpu-01"
    joined = {"metadata": {"name": "gpu-01", "annotations": {nodes.IDENTITY_ANNOTATION: "foreman-worker-gpu-01"}}}
    assert nodes.held_by_another(FleetNode.model_validate(joined)) is None
    assert nodes.held_by_another(node(status={"identity": {"kind": "per-node", "user": own}})) is None
    shared = node(
        status={"identity": {"kind": "shared", "user": "system:serviceaccount:foreman-system:foreman-worker"}}
    )
    assert "shared identity" in (nodes.held_by_another(shared) or "")
    stolen = {**joined, "status": {"identity": {"kind": "other", "user": "alice"}}}
    assert "other identity alice" in (nodes.held_by_another(FleetNode.model_validate(stolen)) or "")
    assert "join did not make" in (nodes.held_by_another(node()) or "")


def test_a_node_joined_where_the_chart_installed_foreman_is_held_by_its_identity_in_that_namespace() -> None:
    elsewhere = f"system:serviceaccount:fleet-ops:{WORKER}-gpu-01"
    reported = node(status={"identity": {"kind": "per-node", "user": elsewhere}})
    assert nodes.held_by_another(reported, "fleet-ops") is None
    assert "per-node identity " + elsewhere in (nodes.held_by_another(reported) or "")  # not foreman-system's
    joined = node(metadata={"name": "gpu-01", "annotations": recorded("fleet-ops")})
    shown = nodes.identity_shown(joined)
    assert shown is not None
    assert (shown.kind, shown.user) == ("per-node", elsewhere)
    rbac = pinned_worker_rbac("gpu-01", "fleet-ops")
    account = next(m for m in rbac if m["kind"] == "ServiceAccount")
    assert account["metadata"]["namespace"] == "fleet-ops"
    subjects = [s for m in rbac if m["kind"] == "ClusterRoleBinding" for s in m["subjects"]]
    assert subjects == [{"kind": "ServiceAccount", "name": f"{WORKER}-gpu-01", "namespace": "fleet-ops"}] * 2


def recorded(namespace: str | None) -> dict[str, str]:
    """The annotations join writes (None: as a release before the namespace annotation wrote them)."""
    where = {nodes.IDENTITY_NAMESPACE_ANNOTATION: namespace} if namespace else {}
    return {nodes.IDENTITY_ANNOTATION: f"{WORKER}-gpu-01", **where}


def test_the_fleetnode_says_where_join_made_the_identity_and_an_old_record_means_foreman_system() -> None:
    assert nodes.recorded_namespace(node(metadata={"name": "gpu-01", "annotations": recorded("fleet-ops")})) == (
        "fleet-ops"
    )
    old = node(metadata={"name": "gpu-01", "annotations": recorded(None)})
    assert nodes.recorded_namespace(old) == NAMESPACE
    assert nodes.own_namespace(old) == NAMESPACE
    shown = nodes.identity_shown(old)
    assert shown is not None
    assert shown.user == f"{PINNED_WORKER_PREFIX}gpu-01"
    assert nodes.held_by_another(old) is None  # joined again by this release, as before
    assert nodes.recorded_namespace(node()) is None
    someone_elses = {nodes.IDENTITY_ANNOTATION: f"{WORKER}-gpu-02", nodes.IDENTITY_NAMESPACE_ANNOTATION: "x"}
    assert nodes.recorded_namespace(node(metadata={"name": "gpu-01", "annotations": someone_elses})) is None
    # the worker's report is the truth: its own identity, in the namespace of the ServiceAccount it acts as
    reported = {"kind": "per-node", "user": f"system:serviceaccount:fleet-ops:{WORKER}-gpu-01"}
    assert nodes.own_namespace(node(metadata={"name": "gpu-01", "annotations": recorded(None)},
                                    status={"identity": reported})) == "fleet-ops"  # fmt: skip
    shared = {"kind": "shared", "user": f"system:serviceaccount:fleet-ops:{WORKER}"}
    assert nodes.own_namespace(node(status={"identity": shared})) is None  # a DaemonSet's node has none of its own


def test_a_node_whose_identity_join_made_in_another_namespace_is_not_joined_again_here() -> None:
    there = node(metadata={"name": "gpu-01", "annotations": recorded(NAMESPACE)})
    why = nodes.held_by_another(there, "fleet-ops")
    assert why == (
        "FleetNode gpu-01 exists and join made its identity in namespace foreman-system: stop that worker and run "
        "`foreman node leave gpu-01` first, or join under another name"
    )
    elsewhere = node(metadata={"name": "gpu-01", "annotations": recorded("fleet-ops")})
    assert nodes.held_by_another(elsewhere, "fleet-ops") is None
    assert "`foreman node leave gpu-01 --foreman-namespace fleet-ops` first" in (nodes.held_by_another(elsewhere) or "")


def test_hints_name_the_namespace_only_where_it_is_not_the_default() -> None:
    assert nodes.node_command("rotate", "gpu-01", NAMESPACE) == "foreman node rotate gpu-01"
    assert (
        nodes.node_command("leave", "gpu-01", "fleet-ops") == "foreman node leave gpu-01 --foreman-namespace fleet-ops"
    )


def test_node_list_notes_a_node_whose_identity_lives_in_another_namespace() -> None:
    elsewhere = node(metadata={"name": "gpu-01", "annotations": recorded("fleet-ops")})
    assert nodes.elsewhere_hint(elsewhere, "fleet-ops") is None
    assert nodes.elsewhere_hint(elsewhere, NAMESPACE) == (
        "gpu-01's identity is in namespace fleet-ops, not foreman-system: `foreman node rotate gpu-01 "
        "--foreman-namespace fleet-ops` renews it; if Foreman is installed in foreman-system, `foreman node leave "
        "gpu-01 --foreman-namespace fleet-ops`, then `foreman node join gpu-01`"
    )
    old = node(metadata={"name": "gpu-01", "annotations": recorded(None)})
    hint = nodes.elsewhere_hint(old, "fleet-ops") or ""
    assert "`foreman node rotate gpu-01` renews it" in hint
    assert hint.endswith("then `foreman node join gpu-01 --foreman-namespace fleet-ops`")
    assert nodes.elsewhere_hint(node(status={"identity": {"kind": "shared"}}), "fleet-ops") is None


def test_leave_and_uninstall_delete_every_object_join_makes_in_each_namespace_bindings_first() -> None:
    made = [nodes.address(m) for m in nodes.made_by_join("gpu-01", ["fleet-ops", NAMESPACE, "fleet-ops"])]
    rbac = "rbac.authorization.k8s.io/v1"
    assert made == [
        (rbac, "ClusterRoleBinding", f"{WORKER}-gpu-01", None),
        (rbac, "ClusterRoleBinding", f"{WORKER}-gpu-01-agent-schedules", None),
        (rbac, "ClusterRole", f"{WORKER}-gpu-01", None),
        ("v1", "ServiceAccount", f"{WORKER}-gpu-01", "fleet-ops"),
        ("v1", "ServiceAccount", f"{WORKER}-gpu-01", NAMESPACE),
        ("foreman.dev/v1alpha1", "FleetNode", "gpu-01", None),
    ]
    assert {nodes.address(m) for m in pinned_worker_rbac("gpu-01", "fleet-ops")} <= set(made)  # nothing left out


def test_a_node_has_drained_when_its_worker_is_gone_and_nothing_is_left_on_it() -> None:
    task = AgenticTask.model_validate({"metadata": {"name": "t", "namespace": "ns"}, "spec": {"kind": "verify"}})
    assert nodes.drained(None, [])
    assert nodes.drained(node(status={"phase": "Stopped"}), [])
    assert nodes.drained(node(status={"phase": "NotReady"}), [])
    assert nodes.drained(node(), [])  # joined, its worker never started
    assert not nodes.drained(node(status={"phase": "Draining"}), [])
    assert not nodes.drained(node(status={"phase": "Ready"}), [])
    assert not nodes.drained(node(status={"phase": "Stopped"}), [task])


def test_node_list_shows_the_identity_kind_and_when_its_token_expires() -> None:
    expires = NOW + timedelta(days=29, hours=3)
    joined = node(
        "gpu-01",
        metadata={"name": "gpu-01", "annotations": {
            nodes.IDENTITY_ANNOTATION: "foreman-worker-gpu-01", nodes.TOKEN_EXPIRY_ANNOTATION: "2027-01-05T15:00:00Z",
        }},
    )  # fmt: skip
    identity = {"kind": "per-node", "user": f"{PINNED_WORKER_PREFIX}mac", "tokenExpiresAt": "2026-12-07T15:00:00Z"}
    reported = node("mac", status={"phase": "Ready", "runningTasks": 2, "identity": identity})
    leaving = node("old", spec={"drain": True}, status={"phase": "Draining", "identity": {"kind": "shared"}})
    expired = node(
        "late", status={"phase": "NotReady", "identity": {"kind": "per-node", "tokenExpiresAt": "2026-12-01T00:00:00Z"}}
    )
    rows = node_rows([reported, joined, leaving, expired], NOW)
    assert rows[0] == ("NAME", "PHASE", "IDENTITY", "TOKEN-EXPIRES", "RUNNING")
    assert rows[1:] == [
        ("gpu-01", "-", "per-node", f"{expires:%Y-%m-%d %H:%M} (29d)", "0"),
        ("late", "NotReady", "per-node", "expired 2026-12-01 00:00", "0"),
        ("mac", "Ready", "per-node", "2026-12-07 15:00 (3h)", "2"),
        ("old", "Draining,Leaving", "shared", "-", "0"),
    ]
