"""What the node's inference server serves: its models, their context windows, which are loaded.

Every OpenAI-compatible server lists its models at `GET /v1/models` (vLLM adds `max_model_len`); the rest is each
server's own: llama-server's `GET /props` (`n_ctx`, the model alias), Ollama's `/api/tags`, `/api/show` (the model's
`<architecture>.context_length`) and `/api/ps` (loaded ones), LM Studio's `/api/v0/models` (`max_context_length`,
`state`). The parsers are pure; `InferenceProbe` asks, each question with a short timeout, so a server that hangs
costs a probe, never a heartbeat (the worker probes on its own clock). The model list is asked every probe (it is
what says the server is up); the details at most every `DETAILS_EVERY` seconds or when the list changes, except what is
loaded (Ollama's `/api/ps`, LM Studio's state), asked every probe where the server said it: a load is seen as it ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import structlog

from foreman.api.lifecycle import reasons
from foreman.api.models.nodes import ModelOffer

log = structlog.get_logger("foreman.worker.inference")

LIST_TIMEOUT = 5.0
DETAIL_TIMEOUT = 2.0
DETAILS_EVERY = 30.0


@dataclass(frozen=True)
class Detail:
    """What a server-specific endpoint adds to a listed model."""

    context_tokens: int | None = None
    loaded: bool | None = None
    size_gb: float | None = None
    """The model's weights (Ollama's `size`): what placement fits into a node's model memory, and estimates the
    load time from (controller/warmth.py)."""


@dataclass(frozen=True)
class InferenceState:
    ready: bool
    reason: str
    message: str
    models: tuple[ModelOffer, ...] = ()


# -- parsers (pure) ----------------------------------------------------------------------------------------------------


def listed(body: Any) -> dict[str, Detail]:
    """`GET /v1/models`: names, and the context where the server says (vLLM's `max_model_len`, LM Studio's
    `max_context_length`)."""
    found: dict[str, Detail] = {}
    for entry in body.get("data") or [] if isinstance(body, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            context = _int(entry.get("max_model_len")) or _int(entry.get("max_context_length"))
            found[entry["id"]] = Detail(context_tokens=context)
    return found


def llama_props(body: Any) -> tuple[str | None, int | None]:
    """llama-server's `GET /props`: its model's alias and context size (`n_ctx`, under
    `default_generation_settings` in recent versions)."""
    if not isinstance(body, dict):
        return None, None
    settings = body.get("default_generation_settings")
    context = _int(settings.get("n_ctx")) if isinstance(settings, dict) else None
    alias = body.get("model_alias") if isinstance(body.get("model_alias"), str) else None
    return alias, context or _int(body.get("n_ctx"))


def ollama_context(body: Any) -> int | None:
    """Ollama's `POST /api/show`: `model_info["<architecture>.context_length"]`."""
    info = body.get("model_info") if isinstance(body, dict) else None
    if not isinstance(info, dict):
        return None
    return next((_int(value) for key, value in info.items() if key.endswith(".context_length")), None)


def ollama_sizes(body: Any) -> dict[str, float]:
    """Ollama's `/api/tags`: `models[].size`, bytes on disk, as GB."""
    models = body.get("models") if isinstance(body, dict) else None
    return {
        m["name"]: round(size / 1e9, 2)
        for m in models or []
        if isinstance(m, dict) and isinstance(m.get("name"), str) and (size := _int(m.get("size")))
    }


def ollama_names(body: Any) -> list[str]:
    """Ollama's `/api/tags` and `/api/ps`: `models[].name`."""
    models = body.get("models") if isinstance(body, dict) else None
    return [m["name"] for m in models or [] if isinstance(m, dict) and isinstance(m.get("name"), str)]


def lmstudio_models(body: Any) -> dict[str, Detail]:
    """LM Studio's `/api/v0/models`: `max_context_length` and `state` (`loaded` or not)."""
    found: dict[str, Detail] = {}
    for entry in body.get("data") or [] if isinstance(body, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            state = entry.get("state")
            loaded = state == "loaded" if isinstance(state, str) else None
            found[entry["id"]] = Detail(_int(entry.get("max_context_length")), loaded)
    return found


def offers(
    details: Mapping[str, Detail],
    *,
    aliases: Mapping[str, str],
    speeds: Mapping[str, float],
    manual: Iterable[str] = (),
) -> tuple[ModelOffer, ...]:
    """The node's models: what the server listed, with the aliases that point at each (task name -> served name),
    the measured speeds, and the names given by hand (`--model`) that the server did not list."""
    names = {**details, **{name: Detail() for name in manual if name not in details and name not in aliases}}
    by_target: dict[str, list[str]] = {}
    for alias, target in aliases.items():
        by_target.setdefault(target, []).append(alias)
    return tuple(
        ModelOffer(
            name=name,
            aliases=sorted(by_target.get(name, [])),
            context_tokens=detail.context_tokens,
            loaded=detail.loaded,
            size_gb=detail.size_gb,
            tokens_per_second=round(speeds[name], 2) if name in speeds else None,
        )
        for name, detail in sorted(names.items())
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# -- asking the server -------------------------------------------------------------------------------------------------


@dataclass
class InferenceProbe:
    base_url: str
    """The OpenAI-compatible base (…/v1); the servers' own endpoints are at its root."""
    api_key_env: str | None = None
    _details: dict[str, Detail] = field(default_factory=dict)
    _asked_at: float = float("-inf")
    _loading_from: frozenset[str] = frozenset()
    """The endpoints that said what is loaded when the details were last asked (`ollama`, `lmstudio`): asked at every
    probe, so that the worker sees a load as it ends (worker/loadwatch.py)."""

    @property
    def root(self) -> str:
        base = self.base_url.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    async def check(self) -> InferenceState:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            try:
                body = await _get(session, f"{self.base_url.rstrip('/')}/models")
            except (aiohttp.ClientConnectionError, TimeoutError) as error:
                message = f"{self.base_url} does not answer: {error or type(error).__name__}"
                return InferenceState(False, reasons.ENDPOINT_UNREACHABLE, message)
            except (aiohttp.ClientResponseError, ValueError) as error:
                return InferenceState(False, reasons.ENDPOINT_ERROR, f"{self.base_url}/models: {error}")
            names = listed(body)
            stale = time.monotonic() - self._asked_at > DETAILS_EVERY or set(names) != set(self._details)
            if stale:
                self._details = await self._ask_details(session, names)
                self._asked_at = time.monotonic()
            else:
                self._details = await self._ask_loaded(session, self._details)
        listing = ", ".join(sorted(self._details)) or "none"
        return InferenceState(True, reasons.MODELS_LISTED, f"{self.base_url} serves {listing}")

    @property
    def details(self) -> Mapping[str, Detail]:
        return self._details

    async def _ask_details(self, session: aiohttp.ClientSession, names: dict[str, Detail]) -> dict[str, Detail]:
        details = dict(names)
        loading_from: set[str] = set()
        props = await _maybe(session, "GET", f"{self.root}/props")
        alias, context = llama_props(props)
        if context:
            # NB: llama-server serves one model, listed under its alias (-a) or file name
            for name in [alias] if alias in details else list(details)[:1]:
                details[name] = replace(details[name], context_tokens=details[name].context_tokens or context)
        if (tags := await _maybe(session, "GET", f"{self.root}/api/tags")) is not None:
            loading_from.add("ollama")
            loaded = set(ollama_names(await _maybe(session, "GET", f"{self.root}/api/ps")))
            sizes = ollama_sizes(tags)
            for name in ollama_names(tags):
                if name in details:
                    shown = await _maybe(session, "POST", f"{self.root}/api/show", {"model": name})
                    context_tokens = details[name].context_tokens or ollama_context(shown)
                    details[name] = Detail(context_tokens, name in loaded, sizes.get(name))
        for name, detail in lmstudio_models(await _maybe(session, "GET", f"{self.root}/api/v0/models")).items():
            if name in details:
                loading_from.add("lmstudio")
                details[name] = Detail(details[name].context_tokens or detail.context_tokens, detail.loaded)
        self._loading_from = frozenset(loading_from)
        return details

    async def _ask_loaded(self, session: aiohttp.ClientSession, details: dict[str, Detail]) -> dict[str, Detail]:
        """Only what is loaded now, of the details last asked (one request per server that says it)."""
        details = dict(details)
        # NB: an endpoint that fails this once keeps what it said last (it is no news of an unload)
        if "ollama" in self._loading_from and (ps := await _maybe(session, "GET", f"{self.root}/api/ps")) is not None:
            loaded = set(ollama_names(ps))
            for name, detail in details.items():
                if detail.loaded is not None:
                    details[name] = replace(detail, loaded=name in loaded)
        if "lmstudio" in self._loading_from:
            for name, detail in lmstudio_models(await _maybe(session, "GET", f"{self.root}/api/v0/models")).items():
                if name in details and detail.loaded is not None:
                    details[name] = replace(details[name], loaded=detail.loaded)
        return details


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=LIST_TIMEOUT)) as response:
        response.raise_for_status()
        return await response.json(content_type=None)


async def _maybe(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    """A server-specific endpoint: its JSON, or None where this server has no such endpoint (or it fails)."""
    try:
        timeout = aiohttp.ClientTimeout(total=DETAIL_TIMEOUT)
        async with session.request(method, url, json=body, timeout=timeout) as response:
            return await response.json(content_type=None) if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


class Speeds:
    """Generation speed per model, a moving average of what the agent executor measured (tokens per second)."""

    WEIGHT = 0.3
    """Of each new measurement: recent tasks count most, one slow turn does not swing it."""

    def __init__(self) -> None:
        self.by_model: dict[str, float] = {}

    def observe(self, model: str, tokens_per_second: float) -> None:
        previous = self.by_model.get(model)
        self.by_model[model] = (
            tokens_per_second if previous is None else previous + self.WEIGHT * (tokens_per_second - previous)
        )
