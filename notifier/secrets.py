"""The notifier's one way to a Secret: by name, and only one labelled foreman.dev/notifier: "true".

RBAC cannot grant `get` by label, and no admission check sees a read; so the apiserver enforces what it can (the
notifier may `get` Secrets, never list or watch them, and only in the namespaces an admin bound it in: README,
"Delivering results") and this module refuses the rest: an unlabelled Secret's value is never used, nor logged.
"""

from __future__ import annotations

import base64
import binascii

from foreman.api.http.client import Kube
from foreman.api.http.errors import Forbidden, NotFound
from foreman.api.models.notify import NOTIFIER_LABEL, SecretKeyRef

SECRETS_ROLE = "foreman-notifier-secrets"
"""The ClusterRole an admin binds (a RoleBinding) in each namespace whose tasks notify."""


class Unusable(Exception):
    """The Secret cannot be used, for a reason a person fixes (the delivery fails with it; no retry helps)."""


class SecretReader:
    def __init__(self, kube: Kube):
        self.kube = kube

    async def read(self, namespace: str, ref: SecretKeyRef) -> str:
        """The value of `ref` in `namespace`; Unusable when it is missing, unlabelled, forbidden or not text. Other API
        errors (an outage) are raised as they are: the delivery is tried again."""
        where = f"Secret {namespace}/{ref.name}"
        try:
            secret = await self.kube.get_raw("v1", "Secret", ref.name, namespace)
        except NotFound:
            raise Unusable(f"{where} not found") from None
        except Forbidden:
            raise Unusable(
                f"the notifier may not read {where}: bind it the ClusterRole {SECRETS_ROLE} in {namespace} (README)"
            ) from None
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(NOTIFIER_LABEL) != "true":
            raise Unusable(f'{where} is not labelled {NOTIFIER_LABEL}: "true", so the notifier does not use it')
        data = secret.get("data") or {}
        if ref.key not in data:
            raise Unusable(f"{where} has no key {ref.key!r}")
        try:
            return base64.b64decode(data[ref.key], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unusable(f"{where} key {ref.key!r} is not UTF-8 text") from None
