"""Install Foreman into a cluster (server-side apply of the CRDs and RBAC, then wait until the CRDs serve), and take it
out again."""

from __future__ import annotations

import asyncio

from foreman.api.http.client import Kube
from foreman.api.http.features import for_server
from foreman.api.tooling.manifests import (
    IMAGE,
    NAMESPACE,
    NOTIFIER_SECRETS,
    WORKER_TRANSCRIPTS,
    Manifest,
    install_manifests,
)
from foreman.api.tooling.nodes import OURS, RBAC, address, delete_each, joined_identities


def _established(crd: Manifest) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def wait_established(kube: Kube, name: str) -> None:
    # NB: a CRD reaches Established in tens of milliseconds; a watch would cost more than this short poll.
    while True:
        if _established(await kube.get_raw("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)):
            return
        await asyncio.sleep(0.02)


async def install(
    kube: Kube,
    *,
    with_workloads: bool = False,
    with_dashboard: bool = False,
    image: str = IMAGE,
    notify_namespaces: tuple[str, ...] = (),
    transcript_namespaces: tuple[str, ...] = (),
    wait_seconds: float = 30.0,
) -> list[Manifest]:
    """Apply every manifest (idempotent: server-side apply, field manager `foreman`), as the server's release takes
    them (features.for_server); return what was applied."""
    wanted = install_manifests(
        with_workloads=with_workloads,
        with_dashboard=with_dashboard,
        image=image,
        notify_namespaces=notify_namespaces,
        transcript_namespaces=transcript_namespaces,
    )
    manifests = for_server(wanted, await kube.server_version())
    for manifest in manifests:
        await kube.apply(manifest)
    crd_names = [m["metadata"]["name"] for m in manifests if m["kind"] == "CustomResourceDefinition"]
    async with asyncio.timeout(wait_seconds):
        for name in crd_names:
            await wait_established(kube, name)
    return manifests


CRD_KINDS = ("CustomResourceDefinition",)


async def uninstall(kube: Kube, *, purge: bool = False, namespace: str = NAMESPACE) -> list[str]:
    """Delete what `install` (with workloads, dashboard and any namespaces' access) and `foreman node join` made,
    newest first; the CRDs, and with them every task, node and schedule, only with `purge`. Joined nodes' identities
    go wherever they are (nodes.joined_identities), in `namespace` too: where the chart installed Foreman.
    Idempotent: what is gone already is skipped. Return the `Kind/name` of each object deleted."""
    made = for_server(install_manifests(with_workloads=True, with_dashboard=True), await kube.server_version())
    targets = [address(m) for m in reversed(made) if purge or m["kind"] not in CRD_KINDS]
    joined = await joined_identities(kube, dict.fromkeys((NAMESPACE, namespace)))
    granted = []  # per namespace: --notify-namespace's Secret access, --transcript-namespace's transcript rights
    for kind in ("RoleBinding", "Role"):
        for found in await kube.list_raw(RBAC, kind, label_selector=OURS):
            meta = found["metadata"]
            if meta["name"] in (NOTIFIER_SECRETS, WORKER_TRANSCRIPTS):
                granted.append((RBAC, kind, meta["name"], meta["namespace"]))
    return await delete_each(kube, [*joined, *granted, *targets])
