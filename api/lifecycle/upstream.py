"""Results flow along `dependsOn`: a task's payload may quote its upstreams' envelopes, resolved when it is claimed.

The syntax is one form only, `{{ upstream.NAME.FIELD }}`, anywhere in a string of the payload (prompt, inputs, any
free-form field): a lookup, never an expression, so nothing an upstream's model wrote can run or reach further than
the field named. FIELD is one of

    summary          the upstream's summary
    verdict          GO, NO-GO, GATE-FAIL, ...
    changedFiles     the files its commit changed, one per line
    pullRequest.url  the pull request it opened (also pullRequest.number)
    extra.KEY        a key of its `extra` (KEY.SUB... for nested ones; maps and lists as JSON)

NAME must be in the task's `dependsOn` (so the value is final when the task runs). A reference that cannot be
resolved (not an upstream, no envelope, no such field) fails the task with reason UpstreamOutputMissing, naming it;
text that is not such a reference is left as it is (`{{ other }}` included). Each value is cut to VALUE_LIMIT
characters and all of them together to TOTAL_LIMIT, with the cut said in the text (a spent budget leaves only
the mark).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from foreman.api.models.envelope import ResultEnvelope

REFERENCE = re.compile(r"\{\{\s*upstream\.([A-Za-z0-9_.-]+)\s*\}\}")
VALUE_LIMIT = 16 * 1024
TOTAL_LIMIT = 256 * 1024
CUT = "\n… (cut)"
SUMMARY_LIMIT = 2000
"""What `inheritUpstream` gives the agent of each upstream's summary."""


@dataclass(frozen=True)
class Missing:
    """Why a reference cannot be resolved (the task fails with reason UpstreamOutputMissing and this message)."""

    message: str


def _split(path: str, upstreams: list[str]) -> tuple[str, str]:
    """NAME and FIELD of `NAME.FIELD`: a task name may hold dots, so the longest upstream name that fits wins."""
    for name in sorted(upstreams, key=len, reverse=True):
        if path.startswith(f"{name}."):
            return name, path[len(name) + 1 :]
    name, _, field = path.partition(".")
    return name, field


def _value(envelope: ResultEnvelope, field: str) -> str | None:
    if field == "summary":
        return envelope.summary
    if field == "verdict":
        return envelope.verdict
    if field == "changedFiles":
        files = envelope.extra.get("changedFiles")
        return "\n".join(str(f) for f in files) if isinstance(files, list) else None
    if field in ("pullRequest.url", "pullRequest.number"):
        record = envelope.pull_request
        return None if record is None else str(record.url if field.endswith("url") else record.number)
    if field.startswith("extra.") and len(field) > len("extra."):
        current: Any = envelope.extra
        for key in field.removeprefix("extra.").split("."):
            if not isinstance(current, dict) or key not in current:
                return None
            current = current[key]
        return current if isinstance(current, str) else json.dumps(current, default=str)
    return None


class _Resolver:
    def __init__(self, upstreams: Mapping[str, ResultEnvelope | None], depends_on: list[str]):
        self.upstreams = upstreams
        self.depends_on = depends_on
        self.budget = TOTAL_LIMIT
        self.missing: Missing | None = None

    def lookup(self, match: re.Match[str]) -> str:
        name, field = _split(match.group(1), self.depends_on)
        reference = match.group(0)
        if name not in self.depends_on:
            return self._miss(f"{reference}: {name!r} is not in the task's dependsOn")
        envelope = self.upstreams.get(name)
        if envelope is None:
            return self._miss(f"{reference}: upstream {name} has no result envelope")
        value = _value(envelope, field)
        if value is None:
            return self._miss(f"{reference}: upstream {name}'s envelope has no {field or 'field'}")
        limit = min(VALUE_LIMIT, self.budget)
        if len(value) > limit:
            value = value[: max(limit - len(CUT), 0)] + CUT
        self.budget = max(self.budget - len(value), 0)
        return value

    def _miss(self, message: str) -> str:
        self.missing = self.missing or Missing(message)
        return ""

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            return REFERENCE.sub(self.lookup, value)
        if isinstance(value, dict):
            return {key: self.render(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.render(item) for item in value]
        return value


def references(payload: Mapping[str, Any]) -> bool:
    """Whether the payload quotes any upstream (the worker then reads the upstreams' envelopes)."""
    return bool(REFERENCE.search(json.dumps(payload, default=str)))


def resolve(
    payload: Mapping[str, Any], upstreams: Mapping[str, ResultEnvelope | None], depends_on: list[str]
) -> dict[str, Any] | Missing:
    """The payload with every upstream reference replaced by its value, or why one cannot be."""
    resolver = _Resolver(upstreams, depends_on)
    rendered = resolver.render(dict(payload))
    return resolver.missing or rendered


def inherited(upstreams: Mapping[str, ResultEnvelope | None]) -> str | None:
    """The message that tells an agent (`inheritUpstream: true`) what its upstreams came to; none without any."""
    lines = []
    for name, envelope in sorted(upstreams.items()):
        if envelope is None:
            continue
        summary = envelope.summary.strip() or "(no summary)"
        if len(summary) > SUMMARY_LIMIT:
            summary = summary[: SUMMARY_LIMIT - len(CUT)] + CUT
        lines.append(f"- {name} ({envelope.verdict}): {summary}")
    if not lines:
        return None
    return "The tasks this one depends on have finished. What they reported:\n" + "\n".join(lines)
