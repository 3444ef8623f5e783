"""Who a worker acts as, and for how long: pure readings of a ServiceAccount token's claims.

A ServiceAccount token is a JWT the apiserver signed; its payload says the account (`sub`), when it expires (`exp`,
absent for the legacy Secret-based tokens) and, for a token bound to a Pod, the Pod and its Node. The worker reads its
own token to report its identity on its FleetNode (`foreman node list`) and to warn before it expires. It never
verifies the signature: the apiserver does that on every request; here the claims only describe.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from foreman.api.models.nodes import NodeIdentity

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
WARN_FRACTION = 0.1
"""The worker warns when its token has less than this share of its life left (`foreman node rotate` in time)."""


def token_claims(token: str) -> dict[str, Any] | None:
    """The JWT payload of `token` (none: not a JWT, e.g. a static token of a dev cluster)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def identity_of(claims: dict[str, Any] | None, worker_account: str, node: str) -> NodeIdentity:
    """The kind of identity a token's claims describe, for the worker of `node`. `worker_account` is the shared worker
    ServiceAccount's name (foreman-worker); the node's own is that name plus `-NODE`. Either counts in any namespace:
    Foreman may be installed in another than foreman-system (the chart's `namespace`), and the admission policies,
    not this description, decide what an identity may do."""
    if claims is None:
        return NodeIdentity(kind="other")
    user = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    expires = expiry(claims)
    bound = claims.get("kubernetes.io")
    account = service_account(user)
    if account is None:
        kind = "other"
    elif isinstance(bound, dict) and isinstance(bound.get("pod"), dict):
        kind = "pod-bound"
    elif account[1] == worker_account:
        kind = "shared"
    elif account[1] == f"{worker_account}-{node}":
        kind = "per-node"
    else:
        kind = "other"
    return NodeIdentity(kind=kind, user=user, token_expires_at=expires)


def service_account(user: str | None) -> tuple[str, str] | None:
    """The namespace and name of the ServiceAccount a user name is (none: not a ServiceAccount's)."""
    account = user.removeprefix(SERVICE_ACCOUNT_PREFIX).split(":") if user else []
    if user is None or not user.startswith(SERVICE_ACCOUNT_PREFIX) or len(account) != 2:
        return None
    return account[0], account[1]


def expiry(claims: dict[str, Any]) -> datetime | None:
    exp = claims.get("exp")
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


@dataclass(frozen=True)
class TokenLife:
    expires_at: datetime
    seconds_left: float
    fraction_left: float
    """Of the token's whole life (issued-at to expiry): under WARN_FRACTION the worker warns."""

    @property
    def expired(self) -> bool:
        return self.seconds_left <= 0

    @property
    def running_out(self) -> bool:
        return self.fraction_left < WARN_FRACTION


def token_life(claims: dict[str, Any] | None, now: datetime) -> TokenLife | None:
    """How much life the token has left (none: it does not expire, or says not when)."""
    if claims is None or (expires := expiry(claims)) is None:
        return None
    issued = claims.get("iat")
    left = (expires - now).total_seconds()
    whole = expires.timestamp() - issued if isinstance(issued, int | float) and issued < expires.timestamp() else None
    return TokenLife(expires, left, max(left, 0.0) / whole if whole else (1.0 if left > 0 else 0.0))
