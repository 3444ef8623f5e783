"""Leader election over a coordination.k8s.io Lease, so two replicas never schedule at the same time.

Like client-go, a lease held by someone else is judged expired by how long *we* have watched it not change, on our
own clock, never by comparing its renewTime with our clock (replicas' clocks may disagree).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import structlog

from foreman.api.http.client import Kube
from foreman.api.http.errors import AlreadyExists, ApiError, Conflict, NotFound
from foreman.api.models.base import ObjectMeta, utcnow
from foreman.api.models.lease import Lease, LeaseSpec
from foreman.api.runtime.daemon import sleep_unless

log = structlog.get_logger("foreman.leader")

Action = Literal["create", "renew", "take-over", "wait"]


def lease_action(lease: Lease | None, identity: str, unchanged_for: float, duration: float) -> Action:
    """What to do with the lease, given how long (seconds, our clock) its record has not changed."""
    if lease is None:
        return "create"
    holder = lease.spec.holder_identity
    if holder == identity:
        return "renew"
    if not holder or unchanged_for > duration:
        return "take-over"
    return "wait"


@dataclass(frozen=True)
class LeaseConfig:
    name: str
    namespace: str
    identity: str
    duration: float = 15.0
    retry_period: float = 2.0

    @property
    def renew_deadline(self) -> float:
        """A leader that could not renew for this long steps down: before anyone may take over (duration)."""
        return self.duration * 2 / 3


class LeaderElector:
    def __init__(self, kube: Kube, config: LeaseConfig, *, on_change: Callable[[bool], None] = lambda _: None):
        self.kube = kube
        self.config = config
        self.on_change = on_change
        self.is_leader = False
        self._last_renewal = 0.0
        self._observed: tuple[str | None, datetime | None] | None = None
        self._observed_at = 0.0
        self.trouble: str | None = None
        """Why the last round could not read or write the Lease (None: it could); the replica is not ready then."""
        self.failed_rounds = 0
        """Rounds in a row that could not read or write the Lease."""

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._try_once()
            except ApiError as error:
                self._troubled(str(error))
            else:
                self._troubled(None)
            if self.is_leader and time.monotonic() - self._last_renewal > self.config.renew_deadline:
                self._set_leader(False)
            await sleep_unless(stop, self.config.retry_period)
        if self.is_leader:
            await self._release()

    def _troubled(self, trouble: str | None) -> None:
        """Say it once when the Lease becomes unreachable, once when it is back: not every retry period for ever."""
        self.failed_rounds = 0 if trouble is None else self.failed_rounds + 1
        if trouble == self.trouble:
            return
        if trouble is None:
            log.info("lease reachable again", lease=self.config.name)
        else:
            log.error("cannot hold the leader-election lease", lease=self.config.name, error=trouble)
        self.trouble = trouble

    async def _try_once(self) -> None:
        try:
            lease: Lease | None = await self.kube.get_lease(self.config.name, self.config.namespace)
        except NotFound:
            lease = None
        now = time.monotonic()
        record = (lease.spec.holder_identity, lease.spec.renew_time) if lease else None
        if record != self._observed:
            self._observed, self._observed_at = record, now
        action = lease_action(lease, self.config.identity, now - self._observed_at, self.config.duration)
        if action == "wait":
            if self.is_leader:
                self._set_leader(False)
            return
        try:
            await self._write(lease, action)
        except (Conflict, AlreadyExists):
            return  # someone else wrote first: look again next round
        self._last_renewal = time.monotonic()
        self._set_leader(True)

    async def _write(self, lease: Lease | None, action: Action) -> None:
        now = utcnow()
        if lease is None:
            spec = LeaseSpec(
                holder_identity=self.config.identity,
                lease_duration_seconds=int(self.config.duration),
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            )
            meta = ObjectMeta(name=self.config.name, namespace=self.config.namespace)
            try:
                await self.kube.create_lease(Lease(metadata=meta, spec=spec))
            except NotFound:
                namespace = self.config.namespace
                raise NotFound(
                    f"namespace {namespace} does not exist, so the Lease cannot be created: run `foreman install` "
                    f"(it creates {namespace}), or pass --lease-namespace",
                    status=404,
                ) from None
            return
        if action == "renew":
            spec = lease.spec.model_copy(update={"renew_time": now})
        else:
            spec = LeaseSpec(
                holder_identity=self.config.identity,
                lease_duration_seconds=int(self.config.duration),
                acquire_time=now,
                renew_time=now,
                lease_transitions=(lease.spec.lease_transitions or 0) + 1,
            )
        await self.kube.replace_lease(lease.model_copy(update={"spec": spec}))

    async def _release(self) -> None:
        """Step down at shutdown so a standby takes over at once instead of after a lease period."""
        self._set_leader(False)
        try:
            lease = await self.kube.get_lease(self.config.name, self.config.namespace)
            if lease.spec.holder_identity == self.config.identity:
                spec = lease.spec.model_copy(update={"holder_identity": None, "renew_time": utcnow()})
                await self.kube.replace_lease(lease.model_copy(update={"spec": spec}))
        except ApiError as error:
            log.info("could not release the lease", error=str(error))

    def _set_leader(self, leading: bool) -> None:
        if leading != self.is_leader:
            self.is_leader = leading
            log.info("leadership changed", leader=leading, identity=self.config.identity)
            self.on_change(leading)
