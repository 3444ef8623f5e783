"""Prometheus metrics of one notifier (its own registry, so several can live in one process, as in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Seconds one send took (a receiver's answer; Apprise's whole call)."""


class NotifierMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "foreman_deliveries",
            "Tries of deliveries, by sink type and outcome (delivered, retry, failed)",
            ["sink_type", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "foreman_delivery_latency_seconds",
            "Seconds one try of a delivery took, by sink type",
            ["sink_type"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.status_writes = Counter(
            "foreman_delivery_status_writes",
            "Status writes of deliveries (one per task and batch)",
            registry=self.registry,
        )
        self.leader = Gauge("foreman_notifier_leader", "1 while this notifier holds the Lease", registry=self.registry)
