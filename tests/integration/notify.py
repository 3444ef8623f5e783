"""What the notifier's integration and fault tests share: a receiver, Secrets, finished tasks, a running notifier."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import aiohttp

from foreman.api.http.client import Kube
from foreman.api.http.errors import Forbidden, NotFound
from foreman.api.models.base import utcnow
from foreman.api.models.notify import NOTIFIER_LABEL
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.manifests import notifier_secret_access
from foreman.notifier.due import RetryPolicy
from foreman.notifier.loop import Leadership, Notifier, NotifierConfig
from foreman.notifier.secrets import SecretReader
from foreman.notifier.sinks import Sender
from tests.integration.helpers import Running, make_task, until
from tests.servers.receiver import Receiver

SIGNING_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


async def secret(kube: Kube, namespace: str, name: str, data: dict[str, str], *, labelled: bool = True) -> None:
    labels = {NOTIFIER_LABEL: "true"} if labelled else {}
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    await kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "stringData": data})


async def grant_secrets(kube: Kube, notifier: Kube, namespace: str) -> None:
    """What an admin does for each namespace whose tasks notify through a Secret (README); returns once the
    apiserver's authorizer has seen the binding (its cache follows within moments)."""
    await kube.apply(notifier_secret_access(namespace))
    await until_readable(notifier, namespace)


async def until_readable(notifier: Kube, namespace: str) -> None:
    """Once the notifier may `get` Secrets in `namespace` (NotFound for a name that is not there)."""

    async def readable() -> bool:
        try:
            await notifier.get_raw("v1", "Secret", "probe", namespace)
        except Forbidden:
            return False
        except NotFound:
            pass
        return True

    await until(readable, bool)


async def finished_task(kube: Kube, namespace: str, name: str, notify: list[dict[str, Any]], **status: Any) -> Any:
    await make_task(kube, namespace, name, notify=notify)
    result = {"kind": "verify", "verdict": "GO", "summary": f"{name} went well"}
    body = {"phase": "Succeeded", "verdict": "GO", "finishedAt": utcnow().isoformat(), "result": result, **status}
    return await kube.patch_status(AgenticTask, name, body, namespace=namespace)


def webhook(base: str, key: str = "signing") -> dict[str, Any]:
    return {"webhook": {"url": f"{base}/hook", "signingSecretRef": {"name": "hook", "key": key}}}


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    server = Receiver(SIGNING_SECRET)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def running_notifier(
    kube: Kube,
    namespace: str,
    *,
    clock: Callable[[], datetime] = utcnow,
    timeout: float = 2.0,
    retry: RetryPolicy | None = None,
    elect: Callable[[Callable[[bool], None]], Leadership] | None = None,
) -> AsyncIterator[Notifier]:
    async with aiohttp.ClientSession() as session:
        sender = Sender(session, SecretReader(kube), timeout=timeout)
        config = NotifierConfig(namespaces=(namespace,), retry=retry or RetryPolicy(max_attempts=4, base=1, cap=4))
        notifier = Notifier(kube, sender, config, clock=clock, elect=elect)
        running = Running(notifier.run, notifier.is_ready)
        try:
            await running.started()
            yield notifier
        finally:
            await running.stop()
