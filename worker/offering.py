"""What this node offers beyond its hardware: its executors, the models of its model servers, its sandbox.

Read through the executors' hooks (`executors.base.hooks`), so a new executor on a model server, or one that confines
what it runs, needs no change here. The model servers are probed on their own clock (`probe`), so one that hangs
never delays a heartbeat; the heartbeat reads `current()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from foreman.api.models.nodes import ModelOffer, NodeSandbox
from foreman.worker import inference, loadwatch
from foreman.worker.config import WorkerConfig
from foreman.worker.executors.base import Executor, InferenceServer, ModelContext, hooks

log = structlog.get_logger("foreman.worker.offering")


@dataclass(frozen=True)
class Offering:
    executors: list[str] = field(default_factory=list)
    models: tuple[ModelOffer, ...] = ()
    inference: inference.InferenceState | None = None
    """The model server's state, for the InferenceReady condition (None: the node has no model server)."""
    sandbox: NodeSandbox | None = None
    """How the executors' processes are confined (None: no executor says)."""
    model_reports: tuple[bool, str, str] | None = None
    """Condition ModelReportsValid (worker/loadwatch.py); None: no model server says what is loaded or how big."""


@dataclass
class ModelServerProbe:
    """One model server, as the executors that run on it name it, and what it said last."""

    server: InferenceServer
    probe: inference.InferenceProbe
    state: inference.InferenceState | None = None

    @property
    def ready(self) -> bool:
        return self.state is not None and self.state.ready


class NodeOffer:
    def __init__(
        self, executors: Mapping[str, Executor], config: WorkerConfig, clock: Callable[[], float] = time.monotonic
    ):
        self.executors = executors
        self.config = config
        self.configured = sorted(
            name for name, executor in executors.items() if hooks(executor).is_configured(self.settings(name))
        )
        self.servers: dict[str, ModelServerProbe] = {}
        """By executor name: the model server each configured executor runs on (one probe per endpoint)."""
        probes: dict[str, ModelServerProbe] = {}
        for name in self.configured:
            server = hooks(executors[name]).inference_server(self.settings(name))
            if server is not None:
                probe = inference.InferenceProbe(server.endpoint, server.api_key_env)
                self.servers[name] = probes.setdefault(server.endpoint, ModelServerProbe(server, probe))
        self.probes = list(probes.values())
        """One per endpoint, however many executors run on it."""
        self.speeds = inference.Speeds()
        self.sandbox: NodeSandbox | None = None
        self.clock = clock
        self.memory_gb: float | None = None
        """The node's model memory, once detected: advertised sizes are clamped to it."""
        self.watches: dict[str, loadwatch.ModelWatch] = {}
        """By served name: each model's loading as the probes saw it."""
        self._wake = asyncio.Event()
        self._said: tuple[bool, str, str] | None = None

    def settings(self, executor: str) -> Mapping[str, object]:
        return self.config.executors.get(executor) or {}

    async def start(self) -> None:
        """Ask the model servers once, and find how the executors confine what they run (the first that says)."""
        await self.check()
        for name in self.configured:
            found = await hooks(self.executors[name]).confinement(self.settings(name))
            if found is not None:
                self.sandbox = found
                return

    async def check(self) -> None:
        """Ask each model server what it serves (and what is loaded), and log when one comes or goes."""
        for server in self.probes:
            state = await server.probe.check()
            if server.state is None or server.state.ready != state.ready:
                log_as = log.info if state.ready else log.warning
                log_as("model server " + ("answers" if state.ready else "does not answer"), message=state.message)
            server.state = state
        now = self.clock()
        for server in self.probes:
            for name, detail in (server.probe.details if server.ready else {}).items():
                watch = self.watches.get(name, loadwatch.ModelWatch())
                self.watches[name] = loadwatch.observe(watch, detail.loaded, now)

    async def probe(self, stop: asyncio.Event) -> None:
        """Ask the servers every heartbeat interval; at once when a task begins with a model not loaded, then every
        `LOADING_PROBE_S` until it is (the load's measurement)."""
        while not stop.is_set():
            loading = any(watch.loading for watch in self.watches.values())
            interval = loadwatch.LOADING_PROBE_S if loading else self.config.heartbeat_interval
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            self._wake.clear()
            if not stop.is_set():
                await self.check()

    def current(self) -> Offering:
        """What the node offers now: its executors (those on a model server only while it answers) and models."""
        executors = [name for name in self.configured if name not in self.servers or self.servers[name].ready]
        # NB: the names given by hand (`--model`) are offered with or without a model server
        sources = [(s.probe.details if s.ready else {}, s.server.model_aliases) for s in self.probes] or [({}, {})]
        models = {
            offer.name: offer
            for details, aliases in sources
            for offer in inference.offers(
                details, aliases=aliases, speeds=self.speeds.by_model, manual=self.config.installed_models
            )
        }
        states = [server.state for server in self.probes if server.state is not None]
        # NB: the node's InferenceReady condition: the first server that does not answer says why, else the first
        state = next((s for s in states if not s.ready), states[0] if states else None)
        offers, problems = loadwatch.advertise(tuple(models[name] for name in sorted(models)), self.watches,
                                               self.memory_gb)  # fmt: skip
        said = any(m.loaded is not None or m.size_gb is not None for m in offers)
        reports = loadwatch.reports(problems) if said else None
        if reports != self._said and reports is not None:
            log_as = log.info if reports[0] else log.warning
            log_as("model reports " + ("as the server says" if reports[0] else "put right"), reason=reports[1],
                   message=reports[2])  # fmt: skip
        self._said = reports
        return Offering(executors, offers, state, self.sandbox, reports)

    def model_context(self, executor: str, model: str | None) -> ModelContext | None:
        """What a run of `executor` gets of the task's model: None for an executor on no model server. The run
        begins now: where the model is not loaded, its load is measured (and the servers asked at once)."""
        if executor not in self.servers:
            return None
        offer = self.model_offer(model)
        if offer is not None and offer.name in self.watches:
            self.watches[offer.name] = loadwatch.want(self.watches[offer.name], self.clock())
            if self.watches[offer.name].loading:
                self._wake.set()
        return ModelContext(offer, self.speeds.observe)

    def model_offer(self, name: str | None) -> ModelOffer | None:
        """What the node advertises of a model (by name or alias); with no name, the one model it serves, if one."""
        models = self.current().models
        if name is None:
            return models[0] if len(models) == 1 else None
        return next((m for m in models if name == m.name or name in m.aliases), None)
