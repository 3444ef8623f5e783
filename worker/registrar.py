"""Keeps this host's FleetNode: created or updated at start, heartbeat with fresh capability every interval."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import datetime

import structlog

from foreman.api.http.client import Kube
from foreman.api.http.errors import AlreadyExists, ApiError, Forbidden, NotFound
from foreman.api.lifecycle import node_status
from foreman.api.lifecycle.identity import identity_of, service_account, token_claims, token_life
from foreman.api.models.base import ObjectMeta, utcnow
from foreman.api.models.nodes import FleetNode, FleetNodeSpec, NodeCapability, NodeIdentity, NodePhase
from foreman.api.runtime.daemon import sleep_unless
from foreman.api.tooling.manifests import NAMESPACE, WORKER
from foreman.api.tooling.nodes import node_command
from foreman.worker.config import WorkerConfig
from foreman.worker.detect import memory
from foreman.worker.metrics import WorkerMetrics
from foreman.worker.offering import Offering

log = structlog.get_logger("foreman.worker.registrar")


class WorkerStalled(Exception):
    """The API has been unreachable for longer than the configured limit: exit so a supervisor restarts us."""


class TokenExpired(Exception):
    """The worker's token has expired: no request can succeed until a person mints another (`foreman node rotate`)."""


def rotate_command(identity: NodeIdentity, node: str) -> str:
    """What mends the node's token: `foreman node rotate`, in the namespace of its own identity where it has one."""
    account = service_account(identity.user) if identity.kind == "per-node" else None
    return node_command("rotate", node, account[0] if account else NAMESPACE)


class Registrar:
    def __init__(
        self,
        kube: Kube,
        config: WorkerConfig,
        capability: NodeCapability,
        metrics: WorkerMetrics,
        running: Callable[[], int],
        offering: Callable[[], Offering] = lambda: Offering(),
        clock: Callable[[], datetime] = utcnow,
    ):
        self.kube = kube
        self.config = config
        self.capability = capability
        self.metrics = metrics
        self.running = running
        self.offering = offering
        """What the node offers now beyond its hardware: executors, models, the model server's state."""
        self.clock = clock
        self.phase: NodePhase = "Ready"
        self.node: FleetNode | None = None
        self.degraded_since: float | None = None
        self.asked_to_leave = asyncio.Event()
        """Set when the node's spec says drain (`foreman node leave`): the worker then drains as on SIGTERM."""
        self._warned_expiry = False

    @property
    def degraded(self) -> bool:
        return self.degraded_since is not None

    async def register(self) -> None:
        identity = self._check_token()  # NB: before the first request, so an expired token says how to mend it
        spec = FleetNodeSpec(
            node_name=socket.gethostname(),
            roles=self.config.roles,
            max_concurrent_tasks=self.config.max_concurrent_tasks,
        )
        node = FleetNode(metadata=ObjectMeta(name=self.config.node_name, labels=self.config.labels), spec=spec)
        try:
            await self.kube.create(node)
        except (AlreadyExists, Forbidden):
            # NB: a worker with a per-node identity may not create FleetNodes (RBAC cannot scope create by name);
            # its node is created beforehand (`foreman node join NAME`), and patched here.
            # NB: never `drain`: a worker restarted after `foreman node leave` asked it to go must not undo that
            spec_patch = {key: value for key, value in spec.to_wire().items() if key != "drain"}
            patch = {"metadata": {"labels": self.config.labels}, "spec": spec_patch}
            try:
                await self.kube.patch(FleetNode, self.config.node_name, patch)
            except NotFound:
                raise Forbidden(
                    f"FleetNode {self.config.node_name} does not exist and this worker may not create it; create it "
                    f"with `foreman node join {self.config.node_name}`",
                    status=403,
                ) from None
        await self._beat(identity)
        log.info("registered", node=self.config.node_name, capability=self.capability.to_wire())

    async def heartbeat(self) -> None:
        await self._beat(self._check_token())

    async def _beat(self, identity: NodeIdentity) -> None:
        """The node's status now: its capability, what it offers, its running tasks and who it acts as."""
        if self.config.overrides.available_ramgb is None:
            self.capability = self.capability.model_copy(update={"available_ramgb": (await memory()).available_gb})
        offering = self.offering()
        capability = self.capability.model_copy(
            update={
                "executors": offering.executors,
                "models": list(offering.models),
                "installed_models": [model.name for model in offering.models],
                "sandbox": offering.sandbox,
            }
        )
        state = offering.inference
        body = node_status.heartbeat(
            self.node.status.conditions if self.node else [],
            phase=self.phase,
            now=self.clock(),
            capability=capability,
            running=self.running(),
            inference=(state.ready, state.reason, state.message) if state is not None else None,
            identity=identity,
            model_reports=offering.model_reports,
        )
        self.node = await self.kube.patch_status(FleetNode, self.config.node_name, body)
        if self.node.spec.drain and not self.asked_to_leave.is_set():
            log.warning("asked to leave: draining", node=self.config.node_name)
            self.asked_to_leave.set()

    def _check_token(self) -> NodeIdentity:
        """Who the worker acts as, and whether its token still lives: an expired one stops the worker (exit for its
        supervisor, with the command that mends it), one with under 10 % of its life left is warned about once."""
        token = self.kube.bearer_token
        claims = token_claims(token) if token else None
        identity = identity_of(claims, WORKER, self.config.node_name)
        life = token_life(claims, self.clock())
        if life is None:
            self.metrics.token_expiry.set(float("nan"))
        else:
            self.metrics.token_expiry.set(life.seconds_left)
            expires = life.expires_at.strftime("%Y-%m-%d %H:%M UTC")
            rotate = rotate_command(identity, self.config.node_name)
            if life.expired:
                raise TokenExpired(f"token expired on {expires}: run {rotate}")
            if life.running_out and not self._warned_expiry:
                log.warning(
                    "token expires soon: run foreman node rotate",
                    run=rotate,
                    node=self.config.node_name,
                    expires=expires,
                    seconds_left=round(life.seconds_left),
                )
            self._warned_expiry = life.running_out
        return identity

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat until stopped; raise WorkerStalled after being cut off from the API for too long."""
        while not await sleep_unless(stop, self.config.heartbeat_interval):
            try:
                await self.heartbeat()
            except ApiError as error:
                self.metrics.heartbeat_failures.inc()
                log.warning("heartbeat failed", node=self.config.node_name, error=str(error))
            self._check_degraded()

    def _check_degraded(self) -> None:
        if self.kube.consecutive_failures < self.config.degraded_after_failures:
            if self.degraded_since is not None:
                log.info("API reachable again", node=self.config.node_name)
            self.degraded_since = None
            return
        now = time.monotonic()
        if self.degraded_since is None:
            self.degraded_since = now
            log.error("degraded: API calls keep failing", node=self.config.node_name)
        elif now - self.degraded_since > self.config.exit_after_degraded:
            raise WorkerStalled(f"API unreachable for more than {self.config.exit_after_degraded:g} s")
