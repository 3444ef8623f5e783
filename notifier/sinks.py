"""Sending one delivery to its sink, and what the answer means (`Outcome`); the only module that reaches receivers.

Webhooks are signed with the Standard Webhooks scheme (the `standardwebhooks` package, so any of its libraries
verifies them), CloudEvents go in HTTP binary mode (the `cloudevents` SDK), chat goes through Apprise (its blocking
`notify` in a thread), log sinks are a structured line. The idempotency key is the webhook-id and the CloudEvent id.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import apprise
import structlog
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent
from standardwebhooks.webhooks import Webhook

from foreman.api.http.errors import ApiError
from foreman.api.models.base import utcnow
from foreman.api.models.tasks import AgenticTask
from foreman.notifier.due import Outcome, Send
from foreman.notifier.payload import EVENT_TYPE, chat_message
from foreman.notifier.secrets import SecretReader, Unusable

log = structlog.get_logger("foreman.notifier.sinks")

ANSWER_LENGTH = 300
RETRIED_STATUSES = frozenset({408, 429})
"""4xx answers worth another try (timeout, rate limit); any other 4xx says the request itself is wrong."""


def http_outcome(status: int, text: str) -> Outcome:
    """What a receiver's HTTP answer means for the delivery."""
    if 200 <= status < 300:
        return Outcome("delivered")
    answer = f"HTTP {status}: {text.strip()[:ANSWER_LENGTH]}".rstrip(": ")
    retry = status >= 500 or status in RETRIED_STATUSES
    return Outcome("retry" if retry else "failed", answer)


def signer_of(secret: str) -> Webhook | None:
    """A signer for a `whsec_` + base64 secret; None for anything else. NB: strict, where the package's own decoding
    skips what is not base64 and would sign with whatever is left; and whatever is wrong with a secret, it is never
    said (it is the secret)."""
    encoded = secret.strip().removeprefix("whsec_")
    if encoded == secret.strip():
        return None
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return None
    return Webhook(key) if key else None


class Sender:
    """Sends deliveries over one HTTP session; `timeout` bounds each send (an Apprise call too)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        secrets: SecretReader,
        *,
        timeout: float = 10.0,
        wall_clock: Callable[[], datetime] = utcnow,
    ):
        self.session = session
        self.secrets = secrets
        self.timeout = timeout
        self.wall_clock = wall_clock
        """The webhook-timestamp's clock: receivers check it against theirs (5 minutes' tolerance), so the real one."""

    async def send(self, task: AgenticTask, send: Send, body: dict[str, Any]) -> Outcome:
        entry = send.entry
        try:
            if entry.webhook is not None:
                secret = await self.secrets.read(task.namespace or "default", entry.webhook.signing_secret_ref)
                return await self._webhook(entry.webhook.url, secret, send.id, body)
            if entry.cloudevents is not None:
                return await self._cloudevent(entry.cloudevents.url, task, send.id, body)
            if entry.apprise is not None:
                url = await self.secrets.read(task.namespace or "default", entry.apprise.url_secret_ref)
                return await self._apprise(url, body)
        except Unusable as error:
            return Outcome("failed", str(error))
        except TimeoutError:
            return Outcome("retry", f"no answer within {self.timeout:g} s")
        except ApiError as error:
            return Outcome("retry", f"reading the Secret: {error}"[:ANSWER_LENGTH])
        except aiohttp.ClientError as error:
            return Outcome("retry", f"{type(error).__name__}: {error}"[:ANSWER_LENGTH])
        log.info("task finished", delivery=send.id, **body)
        return Outcome("delivered")

    async def _post(self, url: str, data: bytes, headers: dict[str, str]) -> Outcome:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with self.session.post(url, data=data, headers=headers, timeout=timeout, allow_redirects=False) as answer:
            # NB: the start of the answer only: a receiver's body is its words, of any length
            said = await answer.content.read(4 * ANSWER_LENGTH)
            return http_outcome(answer.status, said.decode(errors="replace"))

    async def _webhook(self, url: str, secret: str, id: str, body: dict[str, Any]) -> Outcome:
        signer = signer_of(secret)
        if signer is None:
            return Outcome("failed", "the signing secret is not a Standard Webhooks secret (whsec_ + base64)")
        data = json.dumps(body, separators=(",", ":")).encode()
        now = self.wall_clock()
        headers = {
            "content-type": "application/json",
            "webhook-id": id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(id, now, data),
        }
        return await self._post(url, data, headers)

    async def _cloudevent(self, url: str, task: AgenticTask, id: str, body: dict[str, Any]) -> Outcome:
        attributes = {
            "id": id,
            "source": f"/apis/foreman.dev/v1alpha1/namespaces/{task.namespace}/agentictasks/{task.name}",
            "type": EVENT_TYPE,
            "subject": task.name,
            "time": self.wall_clock(),
            "datacontenttype": "application/json",
        }
        message = to_binary_event(CloudEvent(attributes=attributes, data=body))
        return await self._post(url, message.body, message.headers)

    async def _apprise(self, url: str, body: dict[str, Any]) -> Outcome:
        notifier = apprise.Apprise()
        if not notifier.add(url.strip()):
            scheme = url.partition("://")[0][:20] if "://" in url else "none"
            return Outcome("failed", f"not an Apprise URL it knows (scheme {scheme!r}; see the Apprise wiki)")
        title, text = chat_message(body)
        said: list[str] = []

        def noted(entry: apprise.NotifyLogEntry, *_: object) -> None:
            if entry.level in ("ERROR", "WARNING"):
                said.append(entry.message)

        # NB: blocking (requests) inside: in a thread, bounded by Apprise's own deadline
        result = await asyncio.to_thread(
            notifier.notify, body=text, title=title, timeout=self.timeout, log_callback=noted
        )
        if result.status == apprise.AppriseResultStatus.SUCCESS:
            return Outcome("delivered")
        detail = said[-1] if said else f"Apprise: {result.status.name}"
        # NB: Apprise's messages name the service; should one quote its URL, the credentials in it stay out
        return Outcome("retry", detail.replace(url.strip(), "<the Secret's URL>")[:ANSWER_LENGTH])
