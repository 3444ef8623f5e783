"""Install Foreman into a cluster: server-side apply of the CRDs and RBAC, then wait until the CRDs serve."""

from __future__ import annotations

import asyncio

from foreman.api.http.features import for_server
from foreman.api.http.kube import Kube
from foreman.api.tooling.manifests import Manifest, install_manifests


def _established(crd: Manifest) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def _wait_established(kube: Kube, name: str) -> None:
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
    notify_namespaces: tuple[str, ...] = (),
    wait_seconds: float = 30.0,
) -> list[Manifest]:
    """Apply every manifest (idempotent: server-side apply, field manager `foreman`), as the server's release takes
    them (features.for_server); return what was applied."""
    wanted = install_manifests(
        with_workloads=with_workloads, with_dashboard=with_dashboard, notify_namespaces=notify_namespaces
    )
    manifests = for_server(wanted, await kube.server_version())
    for manifest in manifests:
        await kube.apply(manifest)
    crd_names = [m["metadata"]["name"] for m in manifests if m["kind"] == "CustomResourceDefinition"]
    async with asyncio.timeout(wait_seconds):
        for name in crd_names:
            await _wait_established(kube, name)
    return manifests
