"""Controller settings (every one a `foreman controller` flag)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta

from foreman.controller.expiry import TimeToLive
from foreman.controller.match import PlacementPolicy


def default_identity() -> str:
    """Who holds a Lease: the Pod's name (a Deployment's replicas differ by it), else host and process."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ControllerConfig:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all."""
    stale_after: timedelta = timedelta(seconds=90)
    """A node not heard from for this long is NotReady and loses its tasks (a multiple of the worker heartbeat)."""
    max_claim_expiries: int = 3
    resync_every: float = 60.0
    """Safety net: look at every task again this often, even without events."""
    leader_election: bool = True
    lease_name: str = "foreman-controller"
    lease_namespace: str = "foreman-system"
    lease_duration: float = 15.0
    lease_retry_period: float = 2.0
    identity: str = field(default_factory=default_identity)
    write_concurrency: int = 32
    schedule_check_every: float = 30.0
    """Longest the TaskSchedule loop sleeps without an event (it wakes for each due slot anyway)."""
    watch_timeout: int = 60
    """Server-side watch timeout; a stream silent for longer (plus a grace) is treated as stalled."""
    placement: PlacementPolicy = "warm"
    """Which fitting node a task goes to: warm (least model loading; first-fit where nodes say nothing of loaded
    models), first-fit (by name), spread (most free slots), fastest (highest measured tokens per second for the
    task's model)."""
    cold_start_delay: float = 5.0
    """Policy warm: seconds a task waits for a busy node with its model loaded before starting cold elsewhere, where
    neither its Agent nor its TaskQueue says (`coldStartDelay`)."""
    ttl: TimeToLive = field(default_factory=TimeToLive)
    """How long finished tasks are kept, by outcome (`--ttl-after-success`, `--ttl-after-failure`); unset: for ever."""
    unhealthy_after_failures: int = 3
    """API calls failing in a row before /healthz and /readyz answer 503 (the worker's degraded_after_failures)."""

    @property
    def check_every(self) -> float:
        """How often node liveness is checked without any event: a sixth of the threshold, so staleness is seen
        within ~17 % of it."""
        return max(0.05, self.stale_after.total_seconds() / 6)
