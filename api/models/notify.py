"""Where a finished task's result goes (`spec.notify`) and how far it got (`status.deliveries`).

The notifier (`foreman notifier`, foreman.notifier) delivers; the controller and the workers never read the Secrets
the sinks name. Each delivery's idempotency key (task uid, task attempt, sink index) is sent as webhook-id or the
CloudEvent id, so a receiver that dedups sees each event once although the notifier delivers at least once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from foreman.api.models.base import Model, Rule
from foreman.api.models.envelope import VERDICTS

NOTIFIER_LABEL = "foreman.dev/notifier"
"""A Secret the notifier may read carries this label with the value "true"; it refuses any other."""
MAX_SINKS = 16
"""Entries of one `notify` list: a few sinks is the use; a thousand would be a task that writes its status forever."""
MAX_URL = 2048

FINISHED_PHASES = ("Succeeded", "Failed")
TRIGGERS: tuple[str, ...] = (*FINISHED_PHASES, *VERDICTS)
"""What `on` may name: a finished phase, or a verdict (matched as a string)."""

SinkType = Literal["webhook", "cloudevents", "apprise", "log"]
SINK_TYPES: tuple[SinkType, ...] = ("webhook", "cloudevents", "apprise", "log")
DeliveryState = Literal["Pending", "Delivered", "Failed"]


def _known_trigger(value: str) -> str:
    if value not in TRIGGERS:
        raise ValueError(f"{value!r} is neither a finished phase nor a verdict (one of {', '.join(TRIGGERS)})")
    return value


Trigger = Annotated[
    str, Field(max_length=32, json_schema_extra={"enum": list(TRIGGERS)}), AfterValidator(_known_trigger)
]


def is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


URL_CEL = "isURL(self.url) && url(self.url).getScheme() in ['http', 'https'] && url(self.url).getHostname() != ''"
HttpUrl = Annotated[
    str,
    # NB: the pattern (user:password@ refused: credentials belong in a Secret) holds on apiservers without CEL too;
    # the sinks' rules check the rest (a host) as CEL and on the model in the same words
    Field(min_length=8, max_length=MAX_URL, pattern=r"^https?://[^/@\s?#]+([/?#]\S*)?$"),
]


class SecretKeyRef(Model):
    """One key of a Secret in the task's namespace; the Secret must carry the label foreman.dev/notifier: "true"."""

    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class WebhookSink(Model):
    """An HTTP POST of the result as JSON, signed with the Standard Webhooks scheme (webhook-id, webhook-timestamp,
    webhook-signature)."""

    url: HttpUrl
    signing_secret_ref: SecretKeyRef
    """The signing secret: `whsec_` + base64, as the Standard Webhooks libraries make and take it."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=URL_CEL,
            message="spec.notify[].webhook.url: must be an http(s) URL with a host",
            holds=lambda sink: is_http_url(sink.url),
        ),
    )


class CloudEventsSink(Model):
    """A CloudEvent in HTTP binary mode (Knative, Argo Events)."""

    url: HttpUrl

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=URL_CEL,
            message="spec.notify[].cloudevents.url: must be an http(s) URL with a host",
            holds=lambda sink: is_http_url(sink.url),
        ),
    )


class AppriseSink(Model):
    """A chat message through Apprise (Slack, Telegram, Discord, Matrix, ntfy, email, ...); its URL carries the
    credentials, so it lives in a Secret."""

    url_secret_ref: SecretKeyRef


class LogSink(Model):
    """A structured line in the notifier's log."""


Include = Literal["transcript"]


class NotifyEntry(Model):
    """One sink, and which finished tasks it hears about."""

    on: list[Trigger] = Field(default_factory=lambda: list(FINISHED_PHASES), min_length=1, max_length=len(TRIGGERS))
    """Finished phases (Succeeded, Failed) and verdicts (GO, NO-GO, GATE-FAIL, INCOMPLETE, ...): the entry fires when
    the task's phase or its verdict is listed. Default: every finished task."""
    include: list[Include] = Field(default_factory=list, max_length=1)
    """`transcript`: add the agent's transcript to the payload (left out by default: it can be long, and it is the
    model's words)."""
    webhook: WebhookSink | None = None
    cloudevents: CloudEventsSink | None = None
    apprise: AppriseSink | None = None
    log: LogSink | None = None

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        """`on:` unquoted is the boolean true to YAML 1.1 (PyYAML, and kubectl's parser): taken as `on` here, so a
        file `foreman submit` reads means what it says. NB: kubectl refuses it (unknown field "true"): quote it."""
        if isinstance(data, dict) and True in data and "on" not in data:
            return {("on" if key is True else key): value for key, value in data.items()}
        return data

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="[has(self.webhook), has(self.cloudevents), has(self.apprise), has(self.log)].filter(s, s).size() == 1",
            message="spec.notify[]: each entry names exactly one sink: webhook, cloudevents, apprise or log",
            holds=lambda entry: sum(getattr(entry, sink) is not None for sink in SINK_TYPES) == 1,
        ),
    )

    @property
    def sink_type(self) -> SinkType:
        return next(sink for sink in SINK_TYPES if getattr(self, sink) is not None)

    def fires_on(self, phase: str, verdict: str | None) -> bool:
        return phase in self.on or (verdict is not None and verdict in self.on)


Notify = Annotated[list[NotifyEntry], Field(default_factory=list, max_length=MAX_SINKS)]


class Delivery(Model):
    """How far the delivery to `spec.notify[index]` got. None recorded yet means due: the notifier writes once it
    knows the outcome (so the common case costs one status write), and a notifier killed before writing delivers
    again, with the same id."""

    index: int = Field(ge=0, lt=MAX_SINKS)
    """The entry of the task's notify list (its Agent's, where the task has none)."""
    sink: SinkType
    state: DeliveryState
    id: str = Field(max_length=128)
    """The idempotency key: webhook-id, the CloudEvent id."""
    attempts: int = Field(default=0, ge=0)
    last_error: str | None = Field(default=None, max_length=1024)
    """The receiver's answer (status and the start of its body) or why nothing was sent."""
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None
    """Pending: not tried again before this."""


Deliveries = Annotated[
    list[Delivery],
    Field(default_factory=list, max_length=MAX_SINKS, json_schema_extra={"x-kubernetes-list-type": "atomic"}),
]


def delivery_id(uid: str, attempt: int, index: int) -> str:
    return f"{uid}-{attempt}-{index}"
