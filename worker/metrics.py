"""Prometheus metrics of one worker (its own registry: several workers can share a process, as in benchmarks)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks_run = Counter(
            "foreman_worker_tasks_total",
            "Tasks run, by verdict (empty when none) and failure reason (empty on success)",
            ["verdict", "reason"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "foreman_worker_execution_seconds",
            "Executor run time",
            buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 2700),
            registry=self.registry,
        )
        self.claim_conflicts = Counter(
            "foreman_worker_claim_conflicts_total", "Claims lost to a concurrent change", registry=self.registry
        )
        self.heartbeat_failures = Counter(
            "foreman_worker_heartbeat_failures_total", "Heartbeats that could not be written", registry=self.registry
        )
        self.running = Gauge("foreman_worker_running_tasks", "Tasks executing now", registry=self.registry)
        self.token_expiry = Gauge(
            "foreman_worker_token_expiry_seconds",
            "Seconds until the worker's API token expires (absent: it does not, or cannot tell); `foreman node rotate`"
            " mints a fresh one",
            registry=self.registry,
        )
        # The agent executor's, per model: what local inference costs and how fast it is.
        self.agent_tokens = Counter(
            "foreman_agent_tokens_total",
            "Tokens the model server reported (or that were estimated), by direction: prompt, completion, or"
            " prompt_cached (of the prompt tokens, those reused from the server's prompt cache)",
            ["model", "direction"],
            registry=self.registry,
        )
        self.agent_turns = Histogram(
            "foreman_agent_turns",
            "Model calls per agent task",
            buckets=(1, 2, 5, 10, 20, 30, 50, 100, 200),
            registry=self.registry,
        )
        self.agent_tool_calls = Counter(
            "foreman_agent_tool_calls_total", "Tool calls, by tool and outcome (ok or error)", ["tool", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.agent_set_schedule = Counter(
            "foreman_agent_set_schedule_total",
            "set_schedule calls by outcome (created, updated, refused) and, for a refusal, its reason (InvalidSchedule,"
            " InvalidTimeZone, ScheduleLimitExceeded, InvalidParent, BadArguments, Refused)",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.agent_escalations = Counter(
            "foreman_agent_escalations_total",
            "Agent tasks sent to the next model of their escalation ladder, by the model that failed, the next one and"
            " why (NoToolCall, MaxTurnsExceeded, ContextExceeded, GateFailed)",
            ["from_model", "to_model", "reason"],
            registry=self.registry,
        )
        self.agent_subtasks = Counter(
            "foreman_agent_subtasks_total",
            "Tasks agents asked to create (submit_task), by outcome: created, or refused (by the tool's limits or the"
            " apiserver)",
            ["outcome"],
            registry=self.registry,
        )
        self.agent_generation_speed = Histogram(
            "foreman_agent_generation_tokens_per_second",
            "Completion tokens per second of streaming, per model call",
            ["model"],
            buckets=(1, 2, 5, 10, 20, 40, 60, 80, 120, 200, 400),
            registry=self.registry,
        )
