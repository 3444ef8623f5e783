"""A corpus of malformed AgenticTask, FleetNode and TaskSchedule objects, each rejected by the CRD and the models.

Each case names the wire path of the bad field; both rejections must mention it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

DELETE = object()


def valid_task(name: str = "corpus") -> dict[str, Any]:
    return {
        "apiVersion": "foreman.dev/v1alpha1",
        "kind": "AgenticTask",
        "metadata": {"name": name},
        "spec": {"kind": "verify", "requiredCapability": {"accelerator": "any"}},
    }


def valid_node(name: str = "corpus") -> dict[str, Any]:
    return {"apiVersion": "foreman.dev/v1alpha1", "kind": "FleetNode", "metadata": {"name": name}, "spec": {}}


def valid_schedule(name: str = "corpus") -> dict[str, Any]:
    return {
        "apiVersion": "foreman.dev/v1alpha1",
        "kind": "TaskSchedule",
        "metadata": {"name": name},
        "spec": {"schedule": "@daily", "taskTemplate": {"spec": {"kind": "review"}}},
    }


VALID = {"AgenticTask": valid_task, "FleetNode": valid_node, "TaskSchedule": valid_schedule}


@dataclass(frozen=True)
class Malformed:
    id: str
    resource: Literal["AgenticTask", "FleetNode", "TaskSchedule"]
    path: str  # wire path of the bad field, e.g. spec.requiredCapability.accelerator
    value: Any  # DELETE removes the field
    target: Literal["object", "status"] = "object"  # status cases go through the status subresource

    def apply_to(self, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        *parents, leaf = self.path.split(".")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        if self.value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = self.value
        return body

    def body(self, name: str = "corpus") -> dict[str, Any]:
        return self.apply_to(VALID[self.resource](name))


def _t(id: str, path: str, value: Any, target: Literal["object", "status"] = "object") -> Malformed:
    return Malformed(id, "AgenticTask", path, value, target)


def _n(id: str, path: str, value: Any, target: Literal["object", "status"] = "object") -> Malformed:
    return Malformed(id, "FleetNode", path, value, target)


def _s(id: str, path: str, value: Any) -> Malformed:
    return Malformed(id, "TaskSchedule", path, value)


CORPUS: list[Malformed] = [
    _t("task-missing-spec", "spec", DELETE),
    _t("task-kind-not-in-enum", "spec.kind", "deploy"),
    _t("task-kind-wrong-type", "spec.kind", 5),
    _t("task-accelerator-unknown", "spec.requiredCapability.accelerator", "tpu"),
    _t("task-accelerator-wrong-type", "spec.requiredCapability.accelerator", 3),
    _t("task-ram-negative", "spec.requiredCapability.minRAMGB", -1),
    _t("task-ram-not-number", "spec.requiredCapability.minRAMGB", "lots"),
    _t("task-context-negative", "spec.requiredCapability.minContextTokens", -5),
    _t("task-context-fractional", "spec.requiredCapability.minContextTokens", 1.5),
    _t("task-selector-not-map", "spec.requiredCapability.nodeSelector", "gpu"),
    _t("task-selector-value-not-string", "spec.requiredCapability.nodeSelector", {"pool": 1}),
    _t("task-capability-not-object", "spec.requiredCapability", "fast"),
    _t("task-dependson-not-list", "spec.dependsOn", "plan"),
    _t("task-dependson-bad-name", "spec.dependsOn", ["Bad_Name"]),
    _t("task-dependson-empty-name", "spec.dependsOn", [""]),
    _t("task-dependson-too-many", "spec.dependsOn", [f"t{i}" for i in range(257)]),
    _t("task-priority-not-int", "spec.priority", "high"),
    _t("task-timeout-zero", "spec.timeoutSeconds", 0),
    _t("task-timeout-negative", "spec.timeoutSeconds", -10),
    _t("task-retries-negative", "spec.retries", -1),
    _t("task-retries-too-many", "spec.retries", 1000),
    _t("task-gates-not-list", "spec.gates", {"name": "test", "argv": ["make"]}),
    _t("task-gate-argv-a-string", "spec.gates", [{"name": "test", "argv": "make test"}]),
    _t("task-gate-argv-holds-a-number", "spec.gates", [{"name": "test", "argv": ["sleep", 5]}]),
    _t("task-gate-argv-holds-a-list", "spec.gates", [{"name": "test", "argv": ["make", ["test"]]}]),
    _t("task-gate-argv-empty", "spec.gates", [{"name": "test", "argv": []}]),
    _t("task-gate-argv-missing", "spec.gates", [{"name": "test"}]),
    _t("task-gate-name-bad", "spec.gates", [{"name": "run tests; rm", "argv": ["make"]}]),
    _t("task-gate-timeout-zero", "spec.gates", [{"name": "test", "argv": ["make"], "timeoutSeconds": 0}]),
    _t("task-max-fix-rounds-negative", "spec.maxFixRounds", -1),
    _t("task-executor-empty", "spec.executor", ""),
    _t("task-executor-wrong-type", "spec.executor", 1),
    _t("task-payload-not-object", "spec.payload", "do it"),
    _t("task-prompt-wrong-type", "spec.payload.prompt", 5),
    _t("task-modelref-wrong-type", "spec.modelRef", ["a"]),
    _t("task-status-phase-unknown", "status.phase", "Done", "status"),
    _t("task-status-verdict-unknown", "status.verdict", "MAYBE", "status"),
    _t("task-status-attempts-negative", "status.attempts", -1, "status"),
    _t(
        "task-status-envelope-version",
        "status.result",
        {"schemaVersion": "foreman.v2", "kind": "verify", "verdict": "GO"},
        "status",
    ),
    _t("task-status-envelope-no-verdict", "status.result", {"kind": "verify"}, "status"),
    _t("task-status-claimed-not-time", "status.claimedAt", "yesterday", "status"),
    _t("task-notify-too-many-sinks", "spec.notify", [{"log": {}}] * 1000),
    _t("task-notify-url-not-http", "spec.notify", [{"cloudevents": {"url": "ftp://example.com/in"}}]),
    _t("task-notify-url-with-credentials", "spec.notify", [{"cloudevents": {"url": "https://me:pw@example.com/"}}]),
    _t("task-notify-on-unknown", "spec.notify", [{"on": ["Done"], "log": {}}]),
    _t("task-notify-secret-key-bad", "spec.notify", [{"apprise": {"urlSecretRef": {"name": "chat", "key": "a b"}}}]),
    _t("task-notify-webhook-no-secret", "spec.notify", [{"webhook": {"url": "https://example.com/hook"}}]),
    _t(
        "task-status-delivery-state-unknown",
        "status.deliveries",
        [{"index": 0, "sink": "log", "state": "Sent", "id": "x"}],
        "status",
    ),
    _n("node-max-tasks-zero", "spec.maxConcurrentTasks", 0),
    _n("node-max-tasks-not-int", "spec.maxConcurrentTasks", "one"),
    _n("node-roles-not-list", "spec.roles", "gpu"),
    _n("node-status-accelerator-unknown", "status.capability.accelerator", "tpu", "status"),
    _n("node-status-ram-negative", "status.capability.totalRAMGB", -1, "status"),
    _n("node-status-phase-unknown", "status.phase", "Sleeping", "status"),
    _n("node-status-context-not-int", "status.capability.maxContextTokens", "big", "status"),
    _s("schedule-missing-expression", "spec.schedule", DELETE),
    _s("schedule-expression-not-string", "spec.schedule", 5),
    _s("schedule-policy-unknown", "spec.concurrencyPolicy", "Sometimes"),
    _s("schedule-catchup-unknown", "spec.catchUp", "Always"),
    _s("schedule-history-zero", "spec.maxRunHistory", 0),
    _s("schedule-history-too-long", "spec.maxRunHistory", 101),
    _s("schedule-kept-negative", "spec.successfulTasksHistoryLimit", -1),
    _s("schedule-deadline-negative", "spec.startingDeadlineSeconds", -5),
    _s("schedule-source-unknown", "spec.source", "gitops"),
    _s("schedule-suspend-not-bool", "spec.suspend", "maybe"),
    _s("schedule-template-missing", "spec.taskTemplate", DELETE),
    _s("schedule-template-task-kind", "spec.taskTemplate.spec.kind", "deploy"),
]


@dataclass(frozen=True)
class Refused:
    """A cross-field rule's case (foreman.api.models.base.Rule): each field fine on its own, the object refused as a
    whole, by the model and by the apiserver's CEL rule (Kubernetes >= 1.25), with the same message."""

    id: str
    resource: Literal["AgenticTask", "TaskSchedule"]
    fields: dict[str, Any]  # wire path -> value, set on the valid object (its name is `name` in body())
    message: str

    def body(self, name: str = "corpus") -> dict[str, Any]:
        body = VALID[self.resource](name)
        for path, value in self.fields.items():
            named = [name if item == "{name}" else item for item in value] if isinstance(value, list) else value
            body = Malformed(self.id, self.resource, path, named).apply_to(body)
        return body


WEEK = 7 * 24 * 3600
RETRIES = f"spec.retries: (retries + 1) x timeoutSeconds must be at most {WEEK} (a week of attempts)"
URL = "https://example.com/in"
ONE = "spec.notify[]: each entry names exactly one sink: webhook, cloudevents, apprise or log"
REFUSED: list[Refused] = [
    Refused(
        "task-depends-on-itself",
        "AgenticTask",
        {"spec.dependsOn": ["plan", "{name}"]},
        "spec.dependsOn: a task cannot depend on itself",
    ),
    Refused(
        "task-attempts-over-a-week", "AgenticTask", {"spec.retries": 7, "spec.timeoutSeconds": WEEK // 8 + 1}, RETRIES
    ),
    Refused("task-one-try-over-a-week", "AgenticTask", {"spec.retries": 1, "spec.timeoutSeconds": WEEK}, RETRIES),
    Refused(
        "schedule-template-attempts-over-a-week",
        "TaskSchedule",
        {"spec.taskTemplate.spec.retries": 100, "spec.taskTemplate.spec.timeoutSeconds": 6000},
        RETRIES,
    ),
    Refused("task-notify-two-sinks", "AgenticTask", {"spec.notify": [{"log": {}, "cloudevents": {"url": URL}}]}, ONE),
    Refused("task-notify-no-sink", "AgenticTask", {"spec.notify": [{"on": ["Failed"]}]}, ONE),
    Refused(
        "task-notify-webhook-no-host",
        "AgenticTask",
        {"spec.notify": [{"webhook": {"url": "http://:8080/hook", "signingSecretRef": {"name": "s", "key": "k"}}}]},
        "spec.notify[].webhook.url: must be an http(s) URL with a host",
    ),
    Refused(
        "task-notify-cloudevents-no-host",
        "AgenticTask",
        {"spec.notify": [{"cloudevents": {"url": "http://:8080/in"}}]},
        "spec.notify[].cloudevents.url: must be an http(s) URL with a host",
    ),
    Refused(
        "schedule-template-notify-two-sinks",
        "TaskSchedule",
        {"spec.taskTemplate.spec.notify": [{"log": {}, "cloudevents": {"url": URL}}]},
        ONE,
    ),
    Refused(
        "schedule-skip-with-a-deadline",
        "TaskSchedule",
        {"spec.catchUp": "Skip", "spec.startingDeadlineSeconds": 61},
        "spec.startingDeadlineSeconds: over 60 has no effect with catchUp Skip (a fire more than 60 s late is skipped"
        " anyway)",
    ),
    Refused(
        "schedule-agent-made-by-nobody",
        "TaskSchedule",
        {"spec.source": "agent"},
        "spec.createdBy: an agent-made schedule (source agent) names the task that made it",
    ),
]
# Right at each bound: accepted by both.
ACCEPTED: list[Refused] = [
    Refused("task-attempts-a-week", "AgenticTask", {"spec.retries": 7, "spec.timeoutSeconds": WEEK // 8}, ""),
    Refused("task-one-try-a-week", "AgenticTask", {"spec.timeoutSeconds": WEEK * 4}, ""),
    Refused(
        "schedule-skip-with-a-short-deadline",
        "TaskSchedule",
        {"spec.catchUp": "Skip", "spec.startingDeadlineSeconds": 60},
        "",
    ),
    Refused("schedule-runonce-with-a-deadline", "TaskSchedule", {"spec.startingDeadlineSeconds": 3600}, ""),
    Refused(
        "schedule-agent-made",
        "TaskSchedule",
        {"spec.source": "agent", "spec.createdBy": {"task": "fixer", "uid": "u-1", "node": "gpu-box"}},
        "",
    ),
    Refused("task-notify-sixteen-sinks", "AgenticTask", {"spec.notify": [{"log": {}}] * 16}, ""),
    Refused(
        "task-notify-every-sink",
        "AgenticTask",
        {
            "spec.notify": [
                {
                    "on": ["Failed", "GATE-FAIL", "NO-GO"],
                    "webhook": {"url": URL, "signingSecretRef": {"name": "s", "key": "k"}},
                },
                {"cloudevents": {"url": "http://broker.knative-eventing.svc:8080/default/default"}},
                {"apprise": {"urlSecretRef": {"name": "chat", "key": "url"}}, "include": ["transcript"]},
                {"log": {}},
            ]
        },
        "",
    ),
]
