"""Prometheus metrics of one controller (its own registry, so several can live in one process, as in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks = Gauge("foreman_tasks", "AgenticTasks seen, by phase", ["phase"], registry=self.registry)
        self.pending_queue = Gauge(
            "foreman_pending_queue_depth", "Pending tasks ready to place but not placed yet", registry=self.registry
        )
        # NB: the metric keeps its published name; in code "schedule" means cron, placing a task is "place"
        self.time_to_place = Histogram(
            "foreman_time_to_schedule_seconds",
            "From task creation to Scheduled",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "foreman_reconcile_errors_total",
            "Writes that failed for a reason other than a conflict",
            registry=self.registry,
        )
        self.transitions = Counter(
            "foreman_transitions_total",
            "Transitions the controller made, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.deleted = Counter(
            "foreman_tasks_deleted_total",
            "Finished tasks deleted when their time to live was over, by phase",
            ["phase"],
            registry=self.registry,
        )
        self.nodes = Gauge("foreman_fleet_nodes", "FleetNodes seen, by phase", ["phase"], registry=self.registry)
        self.leader = Gauge("foreman_leader", "1 while this replica holds the lease", registry=self.registry)
