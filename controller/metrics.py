"""Prometheus metrics of one controller (its own registry, so several can live in one process, as in tests).

The outcome metrics are counted when the controller sees a task finish (`foreman.controller.outcomes`), so they
outlive the task; the gauges the alerts watch are read from the cache at scrape time (`foreman.controller.readings`).
manifests/monitoring/ has the alerts (PrometheusRule) and a Grafana dashboard built on these names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from foreman.controller.outcomes import Outcome
from foreman.controller.readings import Readings

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 2700, 5400, 10800, 21600)
"""Seconds, created to finished (or to placed): from a stub's second to a long agent run with retries."""


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
        self.subtasks_refused = Counter(
            "foreman_subtasks_refused_total",
            "Child tasks agents made that the controller failed before placing them, by reason (SubtaskLimitExceeded,"
            " SubtaskNotAllowed, ParentNotRunning)",
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
        self.completed = Counter(
            "foreman_task_completed_total",
            "Tasks finished, by namespace, queue, kind (spec.kind), verdict and outcome (Succeeded or failureReason)",
            ["namespace", "queue", "kind", "verdict", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "foreman_task_duration_seconds",
            "Finished tasks: from creation to finish, by kind",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "foreman_task_queue_wait_seconds",
            "Finished tasks that held a node: from creation to their (last) placement, by queue",
            ["queue"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.model_loads = Counter(
            "foreman_placement_model_loads_total",
            "Placements onto a node where the task's model was not loaded (policy warm: cold starts)",
            registry=self.registry,
        )
        self.warm_wait = Histogram(
            "foreman_placement_warm_wait_seconds",
            "Seconds a task that could wait for a node with its model loaded waited (policy warm), by how the wait "
            "ended: warm (such a node took it) or cold (its coldStartDelay ran out)",
            ["outcome"],
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.tokens = Counter(
            "foreman_task_tokens_total",
            "Tokens finished tasks used (status.usage), by namespace, queue, kind and direction: prompt or completion",
            ["namespace", "queue", "kind", "direction"],
            registry=self.registry,
        )

        self.agent_schedules = Counter(
            "foreman_agent_schedules_total",
            "Agent-made TaskSchedules (set_schedule) the controller decided (once per generation), by the reason of"
            " its Accepted condition: ScheduleAccepted, or a refusal's (ScheduleLimitExceeded, InvalidParent, ...)",
            ["reason"],
            registry=self.registry,
        )

    def record(self, outcome: Outcome) -> None:
        """Count one finished task."""
        self.completed.labels(outcome.namespace, outcome.queue, outcome.kind, outcome.verdict, outcome.outcome).inc()
        if outcome.duration is not None:
            self.duration.labels(outcome.kind).observe(outcome.duration)
        if outcome.queue_wait is not None:
            self.queue_wait.labels(outcome.queue).observe(outcome.queue_wait)
        for direction, tokens in (("prompt", outcome.prompt_tokens), ("completion", outcome.completion_tokens)):
            if tokens:
                self.tokens.labels(outcome.namespace, outcome.queue, outcome.kind, direction).inc(tokens)

    def read_at_scrape(self, read: Callable[[], Readings]) -> None:
        """Serve the gauges of `read()` (the cache, now) on every scrape."""
        self.registry.register(_ReadingsCollector(read))


class _ReadingsCollector(Collector):
    def __init__(self, read: Callable[[], Readings]):
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readings = self._read()
        families = (
            ("foreman_queue_waiting_tasks", "Tasks ready to place, waiting for a slot, by queue", ["queue"],
             {(queue,): n for queue, n in readings.waiting.items()}),
            ("foreman_queue_running_tasks", "Tasks holding a node (Scheduled or Running), by queue", ["queue"],
             {(queue,): n for queue, n in readings.running.items()}),
            ("foreman_fleet_node_heartbeat_age_seconds", "Seconds since the controller saw the node's heartbeat change",
             ["node", "phase"], dict(readings.heartbeat_age)),
            ("foreman_tasks_past_timeout", "Running tasks started longer ago than their timeoutSeconds, by namespace",
             ["namespace"], {(namespace,): n for namespace, n in readings.past_timeout.items()}),
        )  # fmt: skip
        for name, documentation, labels, values in families:
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for label_values, value in values.items():
                family.add_metric(list(label_values), value)
            yield family
