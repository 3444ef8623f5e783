"""Hosts joining and leaving the fleet: `foreman node join / rotate / leave / list`.

A host outside the cluster (a GPU box, a Mac) gets its own identity: a ServiceAccount `foreman-worker-NODE` whose
ClusterRole reaches only its FleetNode (pinned_worker_rbac; the admission policy limits its tasks to those placed
there), and a kubeconfig with a TokenRequest token of a bounded lifetime. The shared worker ServiceAccount with a
long-lived token bound to no Pod is not for hosts: it may rewrite the status of every task and every FleetNode.

Everything is checked before anything is written, and every write is a server-side apply, so a join that failed half
way is mended by running it again.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from foreman.api.http.client import Kube
from foreman.api.http.errors import NotFound
from foreman.api.http.features import for_server, tasks_on_node
from foreman.api.http.transport import ServerTrust
from foreman.api.lifecycle.identity import service_account
from foreman.api.models.base import GROUP, wire_time
from foreman.api.models.nodes import FleetNode, NodeIdentity
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.manifests import (
    NAMESPACE,
    PART_OF,
    WORKER,
    Manifest,
    pinned_worker_rbac,
    pinned_worker_user,
)

IDENTITY_ANNOTATION = "foreman.dev/identity"
"""On a joined FleetNode: the ServiceAccount its worker acts as (join refuses a node that another identity holds)."""
IDENTITY_NAMESPACE_ANNOTATION = "foreman.dev/identity-namespace"
"""On a joined FleetNode: the namespace of that ServiceAccount (absent on a node joined before join wrote it: then
foreman-system). NB: beside the name, not in it: a release that reads only the name still knows the node as joined."""
TOKEN_EXPIRY_ANNOTATION = "foreman.dev/token-expires-at"
"""On a joined FleetNode: when the last token join or rotate minted expires (until its worker reports its own)."""
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX_NODE_NAME = 63 - len(f"{WORKER}-")
"""The identity's name (foreman-worker-NODE) is a label too (RBAC subjects, the user name): 63 characters at most."""
ACTIVE = ("Scheduled", "Running")
RBAC = "rbac.authorization.k8s.io/v1"
OURS = f"{PART_OF}=foreman"


class JoinRefused(Exception):
    """Join, rotate or leave cannot go ahead; the message says why and what to do. Nothing was written."""


def check_node_name(name: str) -> None:
    if len(name) > MAX_NODE_NAME or not _DNS_LABEL.fullmatch(name):
        raise JoinRefused(
            f"node name {name!r} is not a DNS label of at most {MAX_NODE_NAME} characters (lower-case letters, digits"
            " and '-', starting and ending with a letter or digit)"
        )


def identity_name(node: str) -> str:
    return f"{WORKER}-{node}"


def parse_duration(text: str) -> timedelta:
    """`720h`, `30m`, `1h30m`, `3600s` (Go's duration syntax, as kubectl's --duration), or bare seconds."""
    if text.isdigit():
        return timedelta(seconds=int(text))
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or parts is None:
        raise JoinRefused(f"duration {text!r} is not like 720h, 90m or 3600s")
    hours, minutes, seconds = (int(part or 0) for part in parts.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def node_kubeconfig(trust: ServerTrust, node: str, token: str) -> dict[str, Any]:
    """A kubeconfig for the node's identity: the admin's server and CA, the node's token, nothing of the admin's."""
    if not trust.verifies:
        raise JoinRefused(
            "the kubeconfig skips TLS verification (insecure-skip-tls-verify): a host given it could not tell the "
            "apiserver from an impostor; use a kubeconfig with the cluster's certificate-authority-data"
        )
    cluster: dict[str, Any] = {"server": trust.server}
    if trust.certificate_authority is not None:
        cluster["certificate-authority-data"] = base64.b64encode(trust.certificate_authority).decode()
    user = identity_name(node)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "foreman", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "foreman", "user": user}}],
        "current-context": user,
    }


def node_command(verb: str, node: str, namespace: str) -> str:
    """`foreman node VERB NODE` for a node whose identity lives in `namespace`, as a hint to print."""
    elsewhere = "" if namespace == NAMESPACE else f" --foreman-namespace {shlex.quote(namespace)}"
    return f"foreman node {verb} {node}{elsewhere}"


def worker_command(node: str, kubeconfig: str, *, accelerator: str | None, labels: dict[str, str]) -> str:
    """The command line to run on the host."""
    argv = ["foreman", "worker", "--kubeconfig", kubeconfig, "--node-name", node]
    if accelerator:
        argv += ["--accelerator", accelerator]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return shlex.join(argv)


def _fleet_node(node: str, labels: dict[str, str], expires_at: datetime, namespace: str) -> Manifest:
    manifest = next(m for m in pinned_worker_rbac(node) if m["kind"] == "FleetNode")
    metadata = manifest["metadata"]
    metadata["labels"] = labels
    metadata["annotations"] = {
        IDENTITY_ANNOTATION: identity_name(node),
        IDENTITY_NAMESPACE_ANNOTATION: namespace,
        TOKEN_EXPIRY_ANNOTATION: wire_time(expires_at),
    }
    return manifest


def recorded_namespace(node: FleetNode) -> str | None:
    """Where join made the node's identity, as it recorded on the FleetNode (none: join did not make it)."""
    annotations = node.metadata.annotations
    if annotations.get(IDENTITY_ANNOTATION) != identity_name(node.name):
        return None
    return annotations.get(IDENTITY_NAMESPACE_ANNOTATION, NAMESPACE)


def own_namespace(node: FleetNode) -> str | None:
    """Where the node's own identity (foreman-worker-NODE) lives: as its worker reports acting as it, else as join
    recorded (none: its worker acts as another identity, or nothing says)."""
    shown = identity_shown(node)
    account = service_account(shown.user) if shown is not None and shown.kind == "per-node" else None
    return account[0] if account else None


def _recorded_or_reported(node: FleetNode) -> list[str]:
    """Where the node's own identity may be: as join recorded and as its worker reports (they differ only for a node
    joined twice, or joined before join recorded the namespace)."""
    return [where for where in (recorded_namespace(node), own_namespace(node)) if where is not None]


def held_by_another(node: FleetNode, namespace: str = NAMESPACE) -> str | None:
    """Why a FleetNode that exists cannot be joined (none: it is free for this node's own identity in `namespace`:
    made there by join, or its worker reports acting as that identity)."""
    own = pinned_worker_user(node.name, namespace)
    reported = node.status.identity
    recorded = recorded_namespace(node)
    if reported is not None and reported.user == own:
        return None
    if reported is None and recorded == namespace:
        return None
    if reported is not None:
        who = f"its worker uses the {reported.kind} identity {reported.user or ''}".rstrip()
    elif recorded is not None:  # NB: joining here too would leave that identity, and its tokens, behind
        who = f"join made its identity in namespace {recorded}"
    else:
        who = "its worker uses an identity join did not make"
    leave = node_command("leave", node.name, own_namespace(node) or recorded or namespace)
    return (
        f"FleetNode {node.name} exists and {who}: stop that worker and run `{leave}` first, or join under another name"
    )


@dataclass(frozen=True)
class Joined:
    kubeconfig: dict[str, Any]
    expires_at: datetime
    command: str


async def _existing(kube: Kube, node: str) -> FleetNode | None:
    try:
        return await kube.get(FleetNode, node)
    except NotFound:
        return None


def _host_trust(kube: Kube, node: str, server: str | None) -> ServerTrust:
    """How the host will trust the apiserver: as the admin's kubeconfig does, at `server` when given; an insecure
    kubeconfig is refused here, before anything is written."""
    trust = kube.server_trust()
    if server is not None:
        trust = dataclasses.replace(trust, server=server)
    node_kubeconfig(trust, node, "")
    return trust


async def _mint(
    kube: Kube, node: str, trust: ServerTrust, lifetime: timedelta, namespace: str
) -> tuple[dict[str, Any], datetime]:
    issued = await kube.request_token(namespace, identity_name(node), int(lifetime.total_seconds()))
    return node_kubeconfig(trust, node, issued.token), issued.expires_at


async def join(
    kube: Kube,
    node: str,
    *,
    lifetime: timedelta,
    kubeconfig_path: str,
    accelerator: str | None = None,
    labels: dict[str, str] | None = None,
    server: str | None = None,
    namespace: str = NAMESPACE,
) -> Joined:
    """Create (or reuse) the node's identity, in `namespace` (where Foreman is installed), and FleetNode and mint its
    kubeconfig. Idempotent."""
    check_node_name(node)
    labels = labels or {}
    trust = _host_trust(kube, node, server)
    if (existing := await _existing(kube, node)) is not None and (why := held_by_another(existing, namespace)):
        raise JoinRefused(why)
    for manifest in for_server(pinned_worker_rbac(node, namespace), await kube.server_version()):
        if manifest["kind"] != "FleetNode":
            await kube.apply(manifest)
    config, expires_at = await _mint(kube, node, trust, lifetime, namespace)
    await kube.apply(_fleet_node(node, labels, expires_at, namespace))
    command = worker_command(node, kubeconfig_path, accelerator=accelerator, labels=labels)
    return Joined(config, expires_at, command)


async def rotate(
    kube: Kube, node: str, *, lifetime: timedelta, server: str | None = None, namespace: str = NAMESPACE
) -> Joined:
    """A fresh token for a joined node (the old one stays valid until it expires: deleting the identity, `leave`, is
    what revokes every token at once)."""
    check_node_name(node)
    trust = _host_trust(kube, node, server)
    try:
        await kube.get_raw("v1", "ServiceAccount", identity_name(node), namespace)
    except NotFound:
        existing = await _existing(kube, node)
        recorded = recorded_namespace(existing) if existing else None
        if recorded is not None and recorded != namespace:
            raise JoinRefused(
                f"node {node} has no identity in namespace {namespace}: join made it in namespace {recorded}; run "
                f"`{node_command('rotate', node, recorded)}`"
            ) from None
        raise JoinRefused(
            f"node {node} has no identity of its own in namespace {namespace}: run "
            f"`{node_command('join', node, namespace)}` first"
        ) from None
    config, expires_at = await _mint(kube, node, trust, lifetime, namespace)
    # NB: the namespace too: it mends the record of a node joined before join wrote one
    annotations = {TOKEN_EXPIRY_ANNOTATION: wire_time(expires_at), IDENTITY_NAMESPACE_ANNOTATION: namespace}
    patch = {"metadata": {"annotations": annotations}}
    await kube.patch(FleetNode, node, patch)
    return Joined(config, expires_at, "")


async def active_tasks(kube: Kube, node: str) -> list[AgenticTask]:
    """The tasks Scheduled or Running on the node now (by its status, the truth; the selection is the hint)."""
    selection = tasks_on_node(node, await kube.server_version())
    listing = await kube.list(
        AgenticTask, label_selector=selection.label_selector, field_selector=selection.field_selector
    )
    return [task for task in listing.items if task.phase in ACTIVE and task.status.assigned_node == node]


def drained(node: FleetNode | None, active: list[AgenticTask]) -> bool:
    """The node's worker is gone (Stopped, NotReady, never started or deleted) and no task is left on it."""
    return not active and (node is None or node.status.phase not in ("Ready", "Draining"))


def made_by_join(node: str, namespaces: Iterable[str]) -> list[Manifest]:
    """Every object join makes for `node`, with its identity in any of `namespaces`, in the order to delete them:
    bindings first and the FleetNode last (so a deletion that fails part-way leaves the node listed, its record
    saying where the rest is)."""
    order = ("ClusterRoleBinding", "ClusterRole", "ServiceAccount", "FleetNode")
    made = {address(m): m for namespace in namespaces for m in pinned_worker_rbac(node, namespace)}
    return sorted(made.values(), key=lambda m: order.index(m["kind"]))


Address = tuple[str, str, str, str | None]
"""An object to delete: apiVersion, kind, name, namespace (none: cluster-scoped)."""


def address(manifest: Manifest) -> Address:
    meta = manifest["metadata"]
    return manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace")


async def delete_each(kube: Kube, addresses: Iterable[Address]) -> list[str]:
    """Delete each object in turn (what is gone already is skipped); return the `Kind/name` of each deleted."""
    deleted = []
    for api_version, kind, name, namespace in addresses:
        try:
            await kube.delete_raw(api_version, kind, name, namespace)
        except NotFound:
            continue
        deleted.append(f"{kind}/{name}")
    return deleted


async def leave(
    kube: Kube, node: str, *, wait_seconds: float, force: bool = False, poll: float = 1.0, namespace: str = NAMESPACE
) -> list[str]:
    """Drain the node (its worker drains as on SIGTERM: tasks finish or go back to Pending), wait until it has, then
    delete its identity, in `namespace` and wherever the FleetNode says it is, and the FleetNode; return what was
    deleted. `force`: delete without waiting (the controller then takes its tasks back as from a lost node)."""
    check_node_name(node)
    namespaces = [namespace]
    if (existing := await _existing(kube, node)) is not None:
        namespaces += _recorded_or_reported(existing)
        await kube.patch(FleetNode, node, {"spec": {"drain": True}})
    deadline = time.monotonic() + wait_seconds
    while not force:
        current = await _existing(kube, node)
        active = await active_tasks(kube, node)
        if drained(current, active):
            break
        if time.monotonic() >= deadline:
            left = ", ".join(f"{t.namespace}/{t.name} ({t.phase})" for t in active) or "none"
            phase = current.status.phase if current else "deleted"
            raise JoinRefused(
                f"node {node} is still {phase} after {wait_seconds:g} s (tasks on it: {left}); nothing deleted. Wait "
                "and run it again, or add --force (the controller then takes its tasks back)"
            )
        await asyncio.sleep(poll)
    deleted = await delete_each(kube, map(address, made_by_join(node, namespaces)))
    if not deleted:
        raise JoinRefused(f"no node {node}: no FleetNode and no identity of that name in namespace {namespace}")
    return deleted


async def joined_identities(kube: Kube, namespaces: Iterable[str]) -> list[Address]:
    """The identities of joined nodes (every object join makes but the FleetNode, the fleet's own data), wherever
    they are: in the namespace each ClusterRoleBinding's subject names and each FleetNode records, and in
    `namespaces` (a node whose bindings and FleetNode are gone already)."""
    prefix = identity_name("")
    where: dict[str, set[str]] = {}
    for binding in await kube.list_raw(RBAC, "ClusterRoleBinding", label_selector=OURS):
        for subject in binding.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and subject.get("name", "").startswith(prefix):
                where.setdefault(subject["name"].removeprefix(prefix), set()).add(subject["namespace"])
    for node in await _fleet(kube):
        where.setdefault(node.name, set()).update(_recorded_or_reported(node))
    for namespace in namespaces:
        for account in await kube.list_raw("v1", "ServiceAccount", namespace, label_selector=OURS):
            if (name := account["metadata"]["name"]).startswith(prefix):
                where.setdefault(name.removeprefix(prefix), set()).add(namespace)
    return [
        address(made)
        for node, there in sorted(where.items())
        for made in made_by_join(node, sorted(there))
        if made["kind"] != "FleetNode"
    ]


async def _fleet(kube: Kube) -> list[FleetNode]:
    # NB: asked first, as an object: a list of a kind no CRD serves is retried as the CRD not loaded yet
    try:
        await kube.get_raw("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"{FleetNode.plural}.{GROUP}")
    except NotFound:
        return []
    return (await kube.list(FleetNode)).items


def identity_shown(node: FleetNode) -> NodeIdentity | None:
    """What the node's worker reported, else what join recorded (a joined node whose worker has not started)."""
    if node.status.identity is not None:
        return node.status.identity
    if (recorded := recorded_namespace(node)) is None:
        return None
    expires = node.metadata.annotations.get(TOKEN_EXPIRY_ANNOTATION)
    return NodeIdentity(
        kind="per-node",
        user=pinned_worker_user(node.name, recorded),
        token_expires_at=datetime.fromisoformat(expires) if expires else None,
    )


def elsewhere_hint(node: FleetNode, namespace: str) -> str | None:
    """For `node list` in `namespace`: a node whose own identity lives in another namespace, and what to do."""
    there = own_namespace(node)
    if there is None or there == namespace:
        return None
    name = node.name
    return (
        f"{name}'s identity is in namespace {there}, not {namespace}: `{node_command('rotate', name, there)}` renews "
        f"it; if Foreman is installed in {namespace}, `{node_command('leave', name, there)}`, then "
        f"`{node_command('join', name, namespace)}`"
    )
