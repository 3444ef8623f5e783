"""`foreman notifier` against the real apiserver and real receivers, with the notifier's own ServiceAccount token:
every sink delivered and recorded in one status write, Secrets read only where bound and only when labelled."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from foreman.api.http import requests
from foreman.api.http.client import Kube
from foreman.api.http.errors import Forbidden
from foreman.api.http.features import VALIDATING_ADMISSION_POLICY
from foreman.api.models import transcript
from foreman.api.models.notify import NOTIFIER_LABEL
from foreman.api.models.schedules import TRIGGER_ANNOTATION, TaskSchedule, manual_task_name
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.manifests import NAMESPACE, NOTIFIER
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, running_controller, running_worker, until
from tests.integration.notify import (
    SIGNING_SECRET,
    finished_task,
    grant_secrets,
    receiving,
    running_notifier,
    secret,
    until_readable,
    webhook,
)
from tests.servers.receiver import Receiver
from tests.tokens import kubeconfig_with_token, service_account_token


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as server:
        yield server


@pytest.fixture
async def notifier_kube(cluster: Cluster, kube: Kube, tmp_path: Path) -> AsyncIterator[Kube]:
    """The notifier's own identity: the ServiceAccount `foreman install` made, with the roles manifests/ give it."""
    token = await service_account_token(kube, NAMESPACE, NOTIFIER)
    config = kubeconfig_with_token(cluster.kubeconfig(), token, tmp_path / "notifier.kubeconfig")
    async with await Kube.connect(str(config)) as client:
        yield client


async def deliveries_of(kube: Kube, namespace: str, name: str, count: int) -> AgenticTask:
    """The task once `count` of its deliveries are final."""
    return await until(
        lambda: kube.get(AgenticTask, name, namespace),
        lambda task: sum(d.state != "Pending" for d in task.status.deliveries) >= count,
    )


async def test_every_sink_is_delivered_signed_and_recorded_in_one_write(
    kube: Kube, notifier_kube: Kube, namespace: str, receiver: Receiver
) -> None:
    await grant_secrets(kube, notifier_kube, namespace)
    await secret(kube, namespace, "hook", {"signing": SIGNING_SECRET})
    await secret(kube, namespace, "chat", {"url": f"json://127.0.0.1:{receiver.port}/apprise"})
    notify = [
        webhook(receiver.url),
        {"cloudevents": {"url": f"{receiver.url}/events"}},
        {"apprise": {"urlSecretRef": {"name": "chat", "key": "url"}}},
        {"log": {}},
        {"on": ["Failed", "NO-GO"], "log": {}},  # not this task's outcome
    ]
    task = await finished_task(kube, namespace, "report", notify)
    uid = task.metadata.uid
    async with running_notifier(notifier_kube, namespace) as notifier:
        done = await deliveries_of(kube, namespace, "report", 4)
        assert notifier.metrics.status_writes._value.get() == 1  # four sinks, one write
    assert [(d.index, d.sink, d.state, d.attempts, d.id) for d in done.status.deliveries] == [
        (0, "webhook", "Delivered", 1, f"{uid}-0-0"),
        (1, "cloudevents", "Delivered", 1, f"{uid}-0-1"),
        (2, "apprise", "Delivered", 1, f"{uid}-0-2"),
        (3, "log", "Delivered", 1, f"{uid}-0-3"),
    ]
    assert all(d.delivered_at is not None and d.last_error is None for d in done.status.deliveries)

    (hook,) = receiver.delivered("/hook")  # verified with the standardwebhooks package, or it would be a 401
    assert hook.id == f"{uid}-0-0"
    assert (hook.body["task"]["name"], hook.body["verdict"]) == ("report", "GO")
    assert hook.body["links"]["describe"] == f"foreman describe report -n {namespace}"
    (event,) = receiver.delivered("/events")  # parsed by the cloudevents SDK
    assert (event.id, event.body["type"], event.body["subject"]) == (
        f"{uid}-0-1",
        "dev.foreman.task.finished",
        "report",
    )
    assert event.body["data"]["summary"] == "report went well"
    (chat,) = receiver.delivered("/apprise")
    assert chat.body["title"] == f"{namespace}/report Succeeded (GO)"
    assert "report went well" in chat.body["message"]
    signing_key = SIGNING_SECRET.removeprefix("whsec_")
    said = str([(r.body, r.headers) for r in receiver.received]) + str(done.status.model_dump())
    assert signing_key not in said
    assert f":{receiver.port}/apprise" not in str(done.status.model_dump())


async def test_a_secret_unlabelled_missing_or_out_of_reach_is_a_failed_delivery_with_its_reason(
    kube: Kube, notifier_kube: Kube, namespace: str, receiver: Receiver
) -> None:
    await grant_secrets(kube, notifier_kube, namespace)
    await secret(kube, namespace, "plain", {"url": "json://127.0.0.1:1/x"}, labelled=False)
    await secret(kube, namespace, "hook", {"other": SIGNING_SECRET})
    await secret(kube, namespace, "badhook", {"signing": "not-a-secret!"})
    notify = [
        {"apprise": {"urlSecretRef": {"name": "plain", "key": "url"}}},
        {"apprise": {"urlSecretRef": {"name": "ghost", "key": "url"}}},
        webhook(receiver.url),
        {"webhook": {"url": f"{receiver.url}/hook", "signingSecretRef": {"name": "badhook", "key": "signing"}}},
    ]
    await secret(kube, namespace, "chat", {"url": "nosuchscheme://example.com/x"})
    notify.append({"apprise": {"urlSecretRef": {"name": "chat", "key": "url"}}})
    await finished_task(kube, namespace, "refused", notify)
    async with running_notifier(notifier_kube, namespace):
        done = await deliveries_of(kube, namespace, "refused", 5)
    assert [(d.state, d.last_error) for d in done.status.deliveries] == [
        (
            "Failed",
            f'Secret {namespace}/plain is not labelled {NOTIFIER_LABEL}: "true", so the notifier does not use it',
        ),
        ("Failed", f"Secret {namespace}/ghost not found"),
        ("Failed", f"Secret {namespace}/hook has no key 'signing'"),
        ("Failed", "the signing secret is not a Standard Webhooks secret (whsec_ + base64)"),
        ("Failed", "not an Apprise URL it knows (scheme 'nosuchscheme'; see the Apprise wiki)"),
    ]
    assert receiver.received == []


async def test_the_notifiers_token_reads_secrets_only_by_name_and_only_where_bound(
    kube: Kube, notifier_kube: Kube, namespace: str, cluster: Cluster
) -> None:
    await secret(kube, namespace, "hook", {"signing": SIGNING_SECRET})
    with pytest.raises(Forbidden):  # not bound here yet
        await notifier_kube.get_raw("v1", "Secret", "hook", namespace)
    with pytest.raises(Forbidden):
        await notifier_kube.get_raw("v1", "Secret", "anything", "kube-system")
    code, out, err = await foreman_cli(cluster, "install", "--notify-namespace", namespace)
    assert code == 0, err
    assert "applied RoleBinding/foreman-notifier-secrets" in out
    await until_readable(notifier_kube, namespace)
    assert (await notifier_kube.get_raw("v1", "Secret", "hook", namespace))["metadata"]["name"] == "hook"
    with pytest.raises(Forbidden):  # no list, no watch: it cannot go looking
        await notifier_kube._send(requests.Request("GET", f"/api/v1/namespaces/{namespace}/secrets"))
    with pytest.raises(Forbidden):  # and it writes no task but its status
        await notifier_kube.patch(AgenticTask, "any", {"spec": {"cancel": True}}, namespace=namespace)


async def test_a_schedules_run_delivers_its_result_to_a_webhook_and_a_chat(
    kube: Kube, notifier_kube: Kube, namespace: str, receiver: Receiver
) -> None:
    """The done-when of issue 33: a TaskSchedule with a webhook and an Apprise sink delivers each run's result, signed
    and deduplicable (the schedule's template is a task's spec: `spec.taskTemplate.spec.notify`)."""
    await grant_secrets(kube, notifier_kube, namespace)
    await secret(kube, namespace, "hook", {"signing": SIGNING_SECRET})
    await secret(kube, namespace, "chat", {"url": f"json://127.0.0.1:{receiver.port}/apprise"})
    notify = [webhook(receiver.url), {"apprise": {"urlSecretRef": {"name": "chat", "key": "url"}}}]
    template = {"spec": {"kind": "review", "executor": "stub", "notify": notify}}
    body = {"metadata": {"name": "nightly", "namespace": namespace},
            "spec": {"schedule": "0 3 * * *", "taskTemplate": template}}  # fmt: skip
    await kube.create(TaskSchedule.model_validate(body))
    node = f"notify-{uuid.uuid4().hex[:6]}"
    async with (
        running_controller(kube, namespace, schedule_check_every=0.05),
        running_worker(kube, node, namespace),
        running_notifier(notifier_kube, namespace),
    ):
        trigger = {"metadata": {"annotations": {TRIGGER_ANNOTATION: "run-1"}}}
        await kube.patch(TaskSchedule, "nightly", trigger, namespace=namespace)
        name = manual_task_name("nightly", "run-1")

        async def run() -> AgenticTask | None:
            listing = await kube.list(AgenticTask, namespace=namespace)
            return next((task for task in listing.items if task.name == name), None)

        def delivered(task: AgenticTask | None) -> bool:
            return task is not None and [d.state for d in task.status.deliveries] == ["Delivered", "Delivered"]

        done = await until(run, delivered, timeout=30)
    (hook,) = receiver.delivered("/hook")
    assert hook.id == f"{done.metadata.uid}-{done.status.attempts}-0"
    assert (hook.body["task"]["schedule"], hook.body["phase"], hook.body["verdict"]) == ("nightly", "Succeeded", "GO")
    (chat,) = receiver.delivered("/apprise")
    assert chat.body["title"] == f"{namespace}/{name} Succeeded (GO)"


async def test_notify_test_sends_one_event_or_says_in_one_line_why_not(
    kube: Kube, cluster: Cluster, namespace: str, receiver: Receiver
) -> None:
    await secret(kube, namespace, "hook", {"signing": SIGNING_SECRET})
    await secret(kube, namespace, "plain", {"url": f"json://127.0.0.1:{receiver.port}/apprise"}, labelled=False)
    sink = f'{{webhook: {{url: "{receiver.url}/hook", signingSecretRef: {{name: hook, key: signing}}}}}}'
    code, out, err = await foreman_cli(cluster, "notify", "test", sink, "-n", namespace)
    assert (code, err) == (0, "")
    assert out.startswith("delivered to the webhook sink (id test-")
    (hook,) = receiver.delivered("/hook")
    assert hook.body["task"]["name"] == "foreman-notify-test"
    code, out, err = await foreman_cli(
        cluster, "notify", "test", "{apprise: {urlSecretRef: {name: plain, key: url}}}", "-n", namespace
    )
    assert code == 2
    assert err.strip() == (
        f'error: not delivered (apprise): Secret {namespace}/plain is not labelled {NOTIFIER_LABEL}: "true", so the'
        " notifier does not use it"
    )
    code, _, err = await foreman_cli(cluster, "notify", "test", "{log: {}, apprise: {}}", "-n", namespace)
    assert code == 2
    assert err.count("\n") == 1


async def test_foreman_notifier_delivers_with_its_own_token_holds_the_lease_and_stops_on_sigterm(
    kube: Kube, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """The daemon as the Deployment runs it: its ServiceAccount's token, leader election in foreman-system."""
    token = await service_account_token(kube, NAMESPACE, NOTIFIER)
    config = kubeconfig_with_token(cluster.kubeconfig(), token, tmp_path / "notifier.kubeconfig")
    lease = f"notifier-{namespace}"
    argv = [sys.executable, "-m", "foreman.cli", "notifier", "--kubeconfig", str(config), "-n", namespace,
            "--health-port", "0", "--lease-namespace", NAMESPACE, "--lease-name", lease,
            "--identity", "probe"]  # fmt: skip
    await finished_task(kube, namespace, "logged", [{"log": {}}])
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        done = await deliveries_of(kube, namespace, "logged", 1)
        held = await kube.get_lease(lease, NAMESPACE)
        assert held.spec.holder_identity == "probe"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()[-2000:]
    assert [d.state for d in done.status.deliveries] == ["Delivered"]
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert any(line["event"] == "task finished" and line["task"]["name"] == "logged" for line in lines)  # the log sink
    assert (await kube.get_lease(lease, NAMESPACE)).spec.holder_identity is None  # released at shutdown


async def test_the_notifiers_token_changes_only_status_deliveries(
    kube: Kube, notifier_kube: Kube, namespace: str
) -> None:
    if await kube.server_version() < VALIDATING_ADMISSION_POLICY:
        pytest.skip("ValidatingAdmissionPolicy needs Kubernetes >= 1.30")
    await finished_task(kube, namespace, "canary", [{"log": {}}])
    await finished_task(kube, namespace, "theirs", [{"log": {}}])
    delivery = {"index": 0, "sink": "log", "state": "Delivered", "id": "x-0-0", "attempts": 1}

    async def refused() -> str | None:
        try:
            await notifier_kube.patch_status(AgenticTask, "canary", {"phase": "Failed"}, namespace=namespace)
        except Forbidden as error:
            return str(error)
        return None

    # NB: the apiserver loads a new policy within moments of its creation: a canary task shows when
    assert "the notifier may change only status.deliveries of a task" in await until(refused, bool)
    for forged in ({"verdict": "NO-GO"}, {"result": None}, {"deliveries": [delivery], "failureReason": "Forged"}):
        with pytest.raises(Forbidden):
            await notifier_kube.patch_status(AgenticTask, "theirs", forged, namespace=namespace)
    written = await notifier_kube.patch_status(AgenticTask, "theirs", {"deliveries": [delivery]}, namespace=namespace)
    assert (written.phase, written.status.verdict, [d.state for d in written.status.deliveries]) == (
        "Succeeded", "GO", ["Delivered"]
    )  # fmt: skip


async def test_the_transcript_goes_only_where_asked_and_only_the_tasks_own(
    kube: Kube, namespace: str, receiver: Receiver
) -> None:
    await secret(kube, namespace, "hook", {"signing": SIGNING_SECRET})
    asked = {**webhook(receiver.url), "include": ["transcript"]}
    own = await finished_task(
        kube, namespace, "talked", [asked, webhook(receiver.url)], transcriptRef="talked-transcript"
    )
    await kube.apply(transcript.configmap(own, '{"event":"task","prompt":"p"}\n'))
    await kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": namespace},
                      "data": {transcript.KEY: "not yours"}})  # fmt: skip
    await finished_task(kube, namespace, "forged", [asked], transcriptRef="other")
    async with running_notifier(kube, namespace):
        await deliveries_of(kube, namespace, "talked", 2)
        await deliveries_of(kube, namespace, "forged", 1)
    bodies = {(r.body["task"]["name"], r.id.endswith("-0")): r.body for r in receiver.delivered("/hook")}
    assert bodies[("talked", True)]["transcript"] == '{"event":"task","prompt":"p"}\n'
    assert "transcript" not in bodies[("talked", False)]
    assert bodies[("forged", True)]["transcript"] == "(ConfigMap other is not this task's transcript)"
