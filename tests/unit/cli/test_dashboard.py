"""The dashboard's pure parts: what each page shows (views) and who may ask (guard); no server, no browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from foreman.api.models.nodes import FleetNode, ModelOffer
from foreman.api.models.queues import TaskQueue
from foreman.api.models.schedules import TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling import manifests
from foreman.cli.app import app
from foreman.cli.dashboard import guard, views
from foreman.controller.cache import Cache
from tests.factories import node

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def task(name: str, phase: str = "Pending", *, namespace: str = "ns", **more: Any) -> AgenticTask:
    status = {"phase": phase, **more.pop("status", {})}
    spec = {"kind": "verify", **more.pop("spec", {})}
    meta = {"name": name, "namespace": namespace, "creationTimestamp": "2026-12-01T11:59:00Z", **more}
    return AgenticTask.model_validate({"metadata": meta, "spec": spec, "status": status})


def blocked(reason: str, message: str = "") -> dict[str, Any]:
    condition = {"type": "Blocked", "status": "True", "reason": reason, "message": message}
    return {"conditions": [{**condition, "lastTransitionTime": "2026-12-01T11:59:30Z"}]}


def keyed(*tasks: AgenticTask) -> dict[views.Key, AgenticTask]:
    return {(t.namespace or "", t.name): t for t in tasks}


@pytest.mark.parametrize(
    ("phase", "status", "expected"),
    [
        ("Pending", {}, "pending"),
        ("Pending", blocked("NoFittingNode"), "blocked"),
        ("Scheduled", {}, "scheduled"),
        ("Running", {}, "running"),
        ("Succeeded", {"verdict": "GO"}, "passed"),
        ("Succeeded", {"verdict": "SKIPPED"}, "passed"),
        ("Succeeded", {"verdict": "NO-GO"}, "not-passed"),
        ("Failed", {"failureReason": "Timeout"}, "failed"),
    ],
)
def test_a_task_is_coloured_by_phase_and_verdict(phase: str, status: dict[str, Any], expected: str) -> None:
    assert views.tone(task("t", phase, status=status)) == expected


@pytest.mark.parametrize(
    ("seconds", "level"), [(0, "fresh"), (29, "fresh"), (30, "late"), (89, "late"), (90, "stale"), (900, "stale")]
)
def test_a_heartbeat_turns_amber_then_red_as_it_goes_stale(seconds: int, level: str) -> None:
    assert views.heartbeat_level(NOW - timedelta(seconds=seconds), NOW, 90) == level
    assert views.heartbeat_level(None, NOW, 90) == "unknown"


def test_a_node_card_shows_ram_used_models_and_the_tasks_in_its_slots() -> None:
    node = FleetNode.model_validate(
        {
            "metadata": {"name": "gpu-box", "labels": {"pool": "a"}},
            "spec": {"maxConcurrentTasks": 2},
            "status": {
                "phase": "Ready",
                "lastHeartbeatTime": "2026-12-01T11:59:50Z",
                "capability": {"accelerator": "cuda", "acceleratorCount": 2, "totalRAMGB": 80, "availableRAMGB": 56,
                               "maxContextTokens": 131072, "installedModels": ["qwen"]},
            },
        }
    )  # fmt: skip
    placed = [
        task("running", "Running", status={"assignedNode": "gpu-box"}),
        task("done", "Succeeded", status={"assignedNode": "gpu-box", "verdict": "GO"}),
    ]
    card = views.fleet_view([node], placed, NOW, 90)["nodes"][0]
    assert card["accelerator"] == "cuda x2"
    assert card["ram"] == {"used": 24, "total": 80}
    assert card["models"] == [{"name": "qwen", "contextTokens": 131072, "tokensPerSecond": None}]
    assert card["slots"] == {"used": 1, "total": 2}
    served = node.model_copy(
        update={"status": node.status.model_copy(update={"capability": node.status.capability.model_copy(update={
            "models": [ModelOffer(name="qwen", context_tokens=32768, tokens_per_second=41.5)]})})}
    )  # fmt: skip
    discovered = views.fleet_view([served], [], NOW, 90)["nodes"][0]
    assert discovered["models"] == [{"name": "qwen", "contextTokens": 32768, "tokensPerSecond": 41.5}]
    assert (card["loaded"], discovered["loaded"]) == (None, None)  # no server said what is loaded
    assert [t["name"] for t in card["tasks"]] == ["running"]
    assert card["heartbeat"] == {"time": "2026-12-01T11:59:50Z", "age": "10s", "level": "fresh"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [("", True), ("team=a", True), ("team==a", True), ("team=b", False), ("team!=b", True), ("urgent", True),
     ("!urgent", False), ("missing", False), ("!missing", True), ("team=a,urgent", True), ("team=a,missing", False)],
)  # fmt: skip
def test_label_selectors_in_the_tasks_filter(selector: str, matches: bool) -> None:
    assert views.labels_match({"team": "a", "urgent": ""}, selector) is matches


def test_the_tasks_table_filters_and_says_why_a_task_is_pending() -> None:
    tasks = keyed(
        task("waits", status=blocked("NoFittingNode", "no Ready FleetNode offers accelerator rocm")),
        task("backoff", status={"notBefore": "2026-12-01T12:05:00Z"}),
        task("free-slot"),
        task("done", "Succeeded", status={"verdict": "GO"}, labels={"team": "a"}),
        task("elsewhere", namespace="other", spec={"kind": "review", "dependsOn": ["x"]}),
    )
    everything = views.tasks_view(tasks, views.TaskFilter(), NOW)
    assert everything["total"] == 5
    assert everything["choices"]["namespace"] == ["ns", "other"]
    rows = {row["name"]: row for row in everything["rows"]}
    assert rows["waits"]["why"] == "NoFittingNode: no Ready FleetNode offers accelerator rocm"
    assert rows["waits"]["reason"] == "NoFittingNode"
    assert rows["backoff"]["why"] == "retry backoff until 2026-12-01T12:05:00Z"
    assert rows["free-slot"]["why"] == "waiting for a free slot on a fitting node"
    assert rows["done"]["why"] == ""
    assert (rows["waits"]["queue"], rows["waits"]["position"]) == ("default", "-")  # no fleet view: no line
    assert rows["elsewhere"]["inGraph"]
    assert not rows["done"]["inGraph"]
    assert rows["waits"]["age"] == "1m"

    def names(**wanted: str) -> list[str]:
        return [row["name"] for row in views.tasks_view(tasks, views.TaskFilter(**wanted), NOW)["rows"]]

    assert names(namespace="other") == ["elsewhere"]
    assert names(phase="Succeeded") == ["done"]
    assert names(kind="review") == ["elsewhere"]
    assert names(label="team=a") == ["done"]
    assert views.TaskFilter.from_query({"phase": " Failed ", "other": "x"}) == views.TaskFilter(phase="Failed")


def test_with_the_fleet_in_view_pending_tasks_say_their_queue_place_in_line_and_why_as_the_controller_would() -> None:
    tasks = keyed(
        task("first", spec={"kind": "verify", "priority": 5, "queue": "team"}),
        task("second", spec={"kind": "verify", "queue": "team"}),
        task("nowhere", spec={"kind": "verify", "queue": "missing"}),
        task("busy", "Running", status={"assignedNode": "n1"}),
    )
    fleet = Cache()
    fleet.replace_tasks(tasks.values())
    fleet.replace_nodes([node("n1")], NOW)
    fleet.replace_queues([TaskQueue.model_validate({"metadata": {"name": "team"}})])
    view = views.tasks_view(tasks, views.TaskFilter(), NOW, fleet)
    rows = {row["name"]: (row["queue"], row["position"], row["why"]) for row in view["rows"]}
    assert rows == {
        "first": ("team", "1", "SlotBusy: waiting for a free slot on a fitting node"),
        "second": ("team", "2", "SlotBusy: waiting for a free slot on a fitting node"),
        "nowhere": ("missing", "-", "QueueNotFound: TaskQueue missing does not exist"),
        "busy": ("default", "-", ""),
    }
    assert view["choices"]["queue"] == ["default", "missing", "team"]
    only_team = views.tasks_view(tasks, views.TaskFilter(queue="team"), NOW, fleet)["rows"]
    assert [row["name"] for row in only_team] == ["first", "second"]


def test_a_graph_is_the_tasks_connected_by_depends_on_with_edges_from_upstream() -> None:
    tasks = keyed(
        task("plan", "Succeeded", status={"verdict": "GO"}),
        task("a", "Running", spec={"kind": "verify", "dependsOn": ["plan"]}),
        task("b", spec={"kind": "verify", "dependsOn": ["plan", "gone"]}),
        task("report", spec={"kind": "verify", "dependsOn": ["a", "b"]}),
        task("alone"),
        task("plan", namespace="other"),
    )
    graph = views.graph_view(tasks, namespace="ns", name="report")  # reached from downstream too
    assert [n["name"] for n in graph["nodes"]] == ["a", "b", "gone", "plan", "report"]
    assert {n["name"]: n["tone"] for n in graph["nodes"]}["gone"] == "missing"
    assert {n["name"]: n["tone"] for n in graph["nodes"]}["plan"] == "passed"
    assert sorted((e["from"], e["to"]) for e in graph["edges"]) == [
        ("ns/a", "ns/report"), ("ns/b", "ns/report"), ("ns/gone", "ns/b"), ("ns/plan", "ns/a"), ("ns/plan", "ns/b"),
    ]  # fmt: skip
    assert graph["order"].index("ns/plan") < graph["order"].index("ns/a") < graph["order"].index("ns/report")
    assert views.graph_view(tasks, namespace="ns", name="nothing")["nodes"] == []

    index = views.graphs_index(tasks)
    assert index == [{"namespace": "ns", "name": "plan", "size": 5, "tones": {"passed": 1, "running": 1, "pending": 2}}]


def test_a_graph_has_parent_child_edges_beside_depends_on_edges() -> None:
    child = {"foreman.dev/created-by": "agent", "foreman.dev/parent": "split", "foreman.dev/depth": "1"}
    tasks = keyed(
        task("split", "Running"),
        task("split-1", labels=child),
        task("split-2", labels=child, spec={"kind": "verify", "dependsOn": ["split-1"]}),
        task("forged", labels={"foreman.dev/parent": "split"}),  # not made by an agent: no edge
    )
    graph = views.graph_view(tasks, namespace="ns", name="split-2")
    assert sorted((e["from"], e["to"], e["kind"]) for e in graph["edges"]) == [
        ("ns/split", "ns/split-1", "parent"), ("ns/split", "ns/split-2", "parent"),
        ("ns/split-1", "ns/split-2", "dependsOn"),
    ]  # fmt: skip
    assert views.graphs_index(tasks)[0]["name"] == "split"


def test_a_graph_of_the_tasks_sharing_a_label() -> None:
    tasks = keyed(
        task("x", labels={"release": "1"}),
        task("y", labels={"release": "1"}, spec={"kind": "verify", "dependsOn": ["x", "z"]}),
        task("z"),
        task("w", namespace="other", labels={"release": "1"}),
    )
    graph = views.graph_view(tasks, namespace="ns", label="release=1")
    assert [n["name"] for n in graph["nodes"]] == ["x", "y"]
    assert graph["edges"] == [{"from": "ns/x", "to": "ns/y", "kind": "dependsOn"}]  # z is not in the graph
    assert len(views.graph_view(tasks, namespace="", label="release=1")["nodes"]) == 3


def test_the_task_page_has_the_timeline_envelope_usage_and_transcript() -> None:
    finished = task(
        "fix",
        "Succeeded",
        status={
            "verdict": "GO",
            "claimedAt": "2026-12-01T11:59:40Z",
            "finishedAt": "2026-12-01T11:59:55Z",
            "conditions": [
                {"type": "Finished", "status": "True", "reason": "Completed",
                 "lastTransitionTime": "2026-12-01T11:59:55Z"},
                {"type": "Scheduled", "status": "True", "reason": "FleetNodeAssigned",
                 "lastTransitionTime": "2026-12-01T11:59:31Z"},
            ],
            "result": {"kind": "issue-fix", "verdict": "GO", "summary": "fixed",
                       "pullRequest": {"url": "https://gitea.example/team/calc/pulls/3", "number": 3, "draft": False}},
            "usage": {"promptTokens": 10, "completionTokens": 2, "totalTokens": 12, "turns": 1},
        },
    )  # fmt: skip
    lines = '{"event":"task","model":"m","tools":["run"],"prompt":"p"}\n{"event":"end","verdict":"GO"}\n'
    lines += '{"event":"pullRequest","url":"https://gitea.example/team/calc/pulls/3","number":3,"draft":false}\n'
    page = views.task_view(finished, lines, actions=True)
    assert [m["what"] for m in page["timeline"]] == [
        "Created", "Scheduled=True", "Claimed", "Finished", "Finished=True",
    ]  # fmt: skip
    assert page["result"]["schemaVersion"] == "foreman.v1"
    assert page["usage"]["totalTokens"] == 12
    assert [e["kind"] for e in page["transcript"]] == ["task", "end", "pullRequest"]
    assert page["transcript"][-1]["text"] == "https://gitea.example/team/calc/pulls/3"
    assert page["pullRequest"] == {"url": "https://gitea.example/team/calc/pulls/3", "number": 3, "draft": False}
    assert page["hasTranscript"]
    assert page["deliveries"] == []  # no notify list
    assert not page["canCancel"]  # finished: nothing to cancel
    assert "kind: verify" in page["spec"]
    assert views.task_view(task("t"), None, actions=True)["canCancel"]
    assert not views.task_view(task("t"), None, actions=False)["canCancel"]
    assert not views.task_view(task("t", spec={"kind": "verify", "cancel": True}), None, actions=True)["canCancel"]
    assert views.task_view(None, None, actions=True) == {"found": False}
    assert (page["parent"], page["children"]) == (None, [])
    child = {"foreman.dev/created-by": "agent", "foreman.dev/parent": "split", "foreman.dev/depth": "1"}
    assert views.task_view(task("split-1", labels=child), None, actions=False)["parent"] == "split"
    parent = views.task_view(task("split", status={"children": ["split-1"]}), None, actions=False)
    assert parent["children"] == ["split-1"]


def test_transcript_records_become_entries_with_turns_calls_and_results() -> None:
    records = [
        {"event": "answer", "turn": 2, "content": "reading", "reasoning": "hmm",
         "toolCalls": [{"name": "read_file", "arguments": '{"path": "a"}'}], "usage": {"prompt": 5, "completion": 1}},
        {"event": "tool", "turn": 2, "name": "run", "ok": False, "result": "exit 1"},
        {"event": "retry", "turn": 3, "reason": "BrokenToolArguments"},
        {"event": "note", "message": "nudged"},
        {"event": "elided", "lines": 40},
        {"event": "mystery", "x": 1},
    ]  # fmt: skip
    answer, tool, retry, note, elided, other = views.transcript_entries(records)
    assert answer["calls"] == [{"name": "read_file", "arguments": '{"path": "a"}'}]
    assert (answer["turn"], answer["text"], answer["reasoning"]) == (2, "reading", "hmm")
    assert (tool["title"], tool["ok"], tool["text"]) == ("run failed", False, "exit 1")
    assert retry["text"] == "BrokenToolArguments"
    assert note["text"] == "nudged"
    assert elided["title"] == "40 lines dropped"
    assert other["kind"] == "mystery"
    assert "'x': 1" in other["text"]


def test_a_schedule_card_has_its_next_fires_in_its_zone_and_utc() -> None:
    schedule = TaskSchedule.model_validate(
        {
            "metadata": {"name": "nightly", "namespace": "ns"},
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin",
                     "taskTemplate": {"spec": {"kind": "review"}}},
            "status": {"runHistory": [{"scheduledTime": "2026-12-01T02:00:00Z", "taskName": "nightly-1",
                                       "phase": "Succeeded", "verdict": "GO"}]},
        }
    )  # fmt: skip
    card = views.schedules_view([schedule], NOW, actions=False)["schedules"][0]
    assert card["next"][0] == {"local": "2026-12-02 03:00 Wed CET", "utc": "2026-12-02 02:00 UTC"}
    assert len(card["next"]) == 3
    assert card["history"][0]["task"] == "nightly-1"
    assert not card["canTrigger"]
    broken = schedule.model_copy(update={"spec": schedule.spec.model_copy(update={"schedule": "61 * * * *"})})
    refused = views.schedule_card(broken, NOW, actions=True)
    assert refused["next"] == []
    assert refused["error"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("127.0.0.1:8090", True), ("localhost:9000", True), ("[::1]:8090", True), ("LOCALHOST", True),
     ("evil.example:8090", False), ("127.0.0.1.evil.example", False), (None, False), ("", False)],
)  # fmt: skip
def test_only_hosts_the_dashboard_answers_to_are_served(host: str | None, allowed: bool) -> None:
    assert (guard.host_refusal(host, guard.allowed_hosts("127.0.0.1")) is None) is allowed


def test_the_bound_address_and_extra_hosts_are_allowed_but_not_a_wildcard() -> None:
    assert "dash.internal" in guard.allowed_hosts("0.0.0.0", ("Dash.Internal",))
    assert "0.0.0.0" not in guard.allowed_hosts("0.0.0.0")
    assert "10.0.0.5" in guard.allowed_hosts("10.0.0.5")


@pytest.mark.parametrize(
    ("origin", "fetch_site", "token", "allowed"),
    [
        ("http://127.0.0.1:8090", None, "secret", True),
        ("http://127.0.0.1:8090", "same-origin", "secret", True),
        (None, "same-origin", "secret", True),
        ("http://127.0.0.1:8090", None, "wrong", False),
        ("http://127.0.0.1:8090", None, None, False),
        ("http://evil.example", None, "secret", False),
        ("http://127.0.0.1:9999", None, "secret", False),
        ("null", None, "secret", False),
        ("http://127.0.0.1:8090", "cross-site", "secret", False),
        ("http://127.0.0.1:8090", "same-site", "secret", False),
        (None, None, "secret", False),
    ],
)
def test_an_action_must_come_from_the_dashboard_page_with_its_token(
    origin: str | None, fetch_site: str | None, token: str | None, allowed: bool
) -> None:
    refusal = guard.action_refusal(
        host="127.0.0.1:8090", origin=origin, fetch_site=fetch_site, token=token, expected="secret"
    )
    assert (refusal is None) is allowed, refusal


def test_the_in_cluster_dashboard_is_optional_and_only_reads() -> None:
    assert not any(doc["metadata"]["name"] == manifests.DASHBOARD for doc in manifests.install_manifests())
    documents = manifests.install_manifests(with_dashboard=True)
    role = next(d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == manifests.DASHBOARD)
    assert {verb for rule in role["rules"] for verb in rule["verbs"]} == {"get", "list", "watch"}
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == manifests.DASHBOARD
    assert pod["containers"][0]["args"] == ["dashboard", "--address", "0.0.0.0", "--port", "8090", "--all-namespaces"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/healthz"
    printed = CliRunner().invoke(app, ["manifests", "--with-dashboard"])
    assert printed.exit_code == 0
    assert "kind: Deployment\nmetadata:\n  name: foreman-dashboard" in printed.output


def test_the_task_page_lists_each_delivery_as_describe_does() -> None:
    notify = [{"log": {}}, {"cloudevents": {"url": "https://example.com/in"}}]
    recorded = [{"index": 0, "sink": "log", "state": "Delivered", "id": "u-0-0", "attempts": 1,
                 "deliveredAt": "2026-12-01T12:00:00Z"}]  # fmt: skip
    done = task("t", phase="Succeeded", spec={"kind": "verify", "notify": notify},
                status={"finishedAt": "2026-12-01T11:59:55Z", "deliveries": recorded})  # fmt: skip
    assert [
        (d["sink"], d["state"], d["delivered"]) for d in views.task_view(done, None, actions=False)["deliveries"]
    ] == [
        ("0:log", "Delivered", "2026-12-01T12:00:00+00:00"),
        ("1:cloudevents", "due", "-"),
    ]


def test_a_node_card_shows_its_loaded_models_their_memory_and_the_workers_warning() -> None:
    node = FleetNode.model_validate({
        "metadata": {"name": "gpu-box"},
        "status": {
            "phase": "Ready",
            "capability": {"modelMemoryGB": 24, "models": [
                {"name": "qwen2.5-coder:7b", "sizeGB": 4.7, "loaded": True},
                {"name": "llama3.3:70b", "sizeGB": 24, "loaded": False},
                {"name": "phi", "loaded": True},
            ]},
            "conditions": [{"type": "ModelReportsValid", "status": "False", "reason": "ModelLargerThanMemory",
                            "lastTransitionTime": "2026-12-01T11:59:50Z",
                            "message": "llama3.3:70b is 42 GB, more than the node's 24 GB of model memory"}],
        },
    })  # fmt: skip
    loaded = views.fleet_view([node], [], NOW, 90)["nodes"][0]["loaded"]
    assert loaded == {
        "models": [{"name": "qwen2.5-coder:7b", "sizeGB": 4.7}, {"name": "phi", "sizeGB": None}],
        "memory": {"used": 4.7, "total": 24},
        "warning": "ModelLargerThanMemory: llama3.3:70b is 42 GB, more than the node's 24 GB of model memory",
    }


def test_the_fleet_page_counts_escalations_per_model_from_the_tasks_attempts() -> None:
    escalated = {"number": 1, "model": "small", "outcome": "Escalated", "verdict": "INCOMPLETE"}
    climbed = task("climbed", "Succeeded", status={"attemptHistory": [
        escalated, {**escalated, "number": 2, "model": "medium"},
        {"number": 3, "model": "large", "outcome": "Completed"},
    ]})  # fmt: skip
    waiting = task("waiting", status={"attemptHistory": [escalated], "escalation": {"model": "medium", "step": 1}})
    retried = task("retried", "Failed", status={"attemptHistory": [
        {"number": 1, "model": "small", "outcome": "Timeout"}, {"number": 2, "model": "small", "outcome": "Timeout"},
    ]})  # fmt: skip
    assert views.fleet_view([], [climbed, waiting, retried], NOW, 90)["escalations"] == [
        {"from": "medium", "to": "large", "count": 1}, {"from": "small", "to": "medium", "count": 2},
    ]  # fmt: skip


def test_the_task_page_has_the_gates_the_review_and_every_attempt() -> None:
    gate = {"name": "tests", "status": "passed", "exitStatus": 0, "seconds": 1.5, "outputTail": "ran 1\n\nOK\n"}
    review = {"agentRef": "careful", "model": "big", "verdict": "GO", "reasons": "right"}
    reviewed = task("fix", "Succeeded", status={
        "verdict": "GO",
        "result": {"kind": "issue-fix", "verdict": "GO", "gates": [gate], "fixRounds": 1, "review": review},
        "attemptHistory": [{"number": 1, "node": "a", "model": "small", "outcome": "Completed", "verdict": "GO"},
                           {"number": 2, "node": "b", "model": "big", "outcome": "Completed", "verdict": "GO"}],
    })  # fmt: skip
    page = views.task_view(reviewed, None, actions=False)
    assert page["gates"] == {"fixRounds": 1, "rows": [
        {"name": "tests", "status": "passed", "exitStatus": 0, "seconds": 1.5, "last": "OK"},
    ]}  # fmt: skip
    assert page["review"] == review
    assert [(a["node"], a["model"]) for a in page["attemptHistory"]] == [("a", "small"), ("b", "big")]
    in_review = task("fix", status={"review": {"agentRef": "careful"}})
    assert views.task_view(in_review, None, actions=False)["review"]["reasons"] == "not answered yet"
    assert views.task_view(task("t"), None, actions=False)["gates"] is None
    lines = '{"event":"review","verdict":"NO-GO","reasons":"no test"}\n'
    assert views.task_view(reviewed, lines, actions=False)["transcript"][0]["title"] == "review: NO-GO"
