"""ServiceAccount tokens from the apiserver's TokenRequest API, and kubeconfigs that present them.

Two suites need them: a cluster the tests did not start has no static tokens for our identities (they are made from
the ServiceAccounts `foreman install` created), and the admission tests need a token bound to a Pod, as a DaemonSet
pod's is, because only such a token names the pod's Node."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml

from foreman.api.http.client import Kube
from foreman.api.http.requests import BoundPod

TOKEN_SECONDS = 3600
"""Long enough for the longest suite run; the apiserver's minimum is 600 s."""


async def service_account_token(kube: Kube, namespace: str, name: str, *, pod: dict[str, Any] | None = None) -> str:
    """A token of ServiceAccount `namespace/name` (`Kube.request_token`); bound to `pod` (a stored Pod) when given,
    so the apiserver puts the Pod's Node into the token's user info, and the token dies with the Pod."""
    bound = BoundPod(pod["metadata"]["name"], pod["metadata"]["uid"]) if pod is not None else None
    return (await kube.request_token(namespace, name, TOKEN_SECONDS, pod=bound)).token


def jwt_of(claims: dict[str, Any]) -> str:
    """A token shaped as the apiserver's (header.payload.signature, base64url without padding), signed by no one."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def kubeconfig_with_token(base: Path, token: str, path: Path) -> Path:
    """`base` (its cluster: server and CA) with its user replaced by `token`, written to `path` (owner-only)."""
    config = yaml.safe_load(base.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
    user = "token-user"
    written = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user, "namespace": "default"}}],
        "current-context": user,
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(written, sort_keys=False))
    return path
