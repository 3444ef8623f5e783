"""TaskSchedules against a real kube-apiserver, with a controller on a fake clock the tests move.

No worker runs here except in the end-to-end test (a node's liveness is judged on the controller's clock, which
these tests jump by hours); tasks are finished by writing their status as a worker would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from foreman.api.cron.expression import parse
from foreman.api.http.client import Kube
from foreman.api.models.base import utcnow, wire_time
from foreman.api.models.schedules import SCHEDULE_LABEL, TaskSchedule, manual_task_name, task_name
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.sdk import AlreadyTriggered, ForemanClient, NotOurs
from foreman.controller.loop import Controller
from tests.clock import Clock
from tests.clusters import Cluster
from tests.integration.helpers import events, foreman_cli, running_controller, running_worker, until

ROOT = Path(__file__).parents[2]
TEN_MINUTES = "*/10 * * * *"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def schedule_body(name: str, namespace: str, expression: str = TEN_MINUTES, **spec: Any) -> TaskSchedule:
    spec.setdefault("concurrencyPolicy", "Allow")
    return TaskSchedule.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"schedule": expression, "taskTemplate": {"spec": {"kind": "review"}}, **spec},
        }
    )


async def move(controller: Controller, clock: Clock, moment: datetime) -> None:
    clock.now = moment
    controller.schedules.wake()


def schedule_of(kube: Kube, namespace: str, name: str) -> Callable[[], Any]:
    return lambda: kube.get(TaskSchedule, name, namespace)


def newest_phase(schedule: TaskSchedule) -> str | None:
    """The phase of the newest run record; None before the controller has written any (after a restart, say)."""
    history = schedule.status.run_history
    return history[0].phase if history else None


def tasks_of(kube: Kube, namespace: str, name: str) -> Callable[[], Any]:
    async def fetch() -> list[AgenticTask]:
        listing = await kube.list(AgenticTask, namespace=namespace, label_selector=f"{SCHEDULE_LABEL}={name}")
        return sorted(listing.items, key=lambda task: task.name)

    return fetch


async def finish(kube: Kube, task: AgenticTask, phase: str = "Succeeded", verdict: str = "GO") -> None:
    """What a worker writes at the end of a run."""
    now = wire_time(utcnow())
    result = {"kind": "review", "verdict": verdict, "summary": f"finished {verdict}"}
    await kube.patch_status(
        AgenticTask,
        task.name,
        {"phase": phase, "verdict": verdict, "startedAt": now, "finishedAt": now, "result": result},
        namespace=task.namespace,
    )


def slots(expression: str, after: datetime, count: int) -> list[datetime]:
    return parse(expression).upcoming(after, count)


async def test_fires_create_tasks_at_the_right_minutes(kube: Kube, namespace: str, clock: Clock) -> None:
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05) as controller:
        created = await kube.create(schedule_body("every-ten", namespace))
        first, second = slots(TEN_MINUTES, clock.now, 2)
        await move(controller, clock, first - timedelta(seconds=1))
        await until(schedule_of(kube, namespace, "every-ten"), lambda s: s.status.next_schedule_time == first)
        assert await tasks_of(kube, namespace, "every-ten")() == []

        await move(controller, clock, first + timedelta(seconds=1))
        (task,) = await until(tasks_of(kube, namespace, "every-ten"), lambda tasks: len(tasks) == 1)
        assert task.name == task_name("every-ten", first)
        assert task.metadata.owner_references[0].uid == created.metadata.uid
        assert task.spec.kind == "review"
        await move(controller, clock, second + timedelta(seconds=1))
        tasks = await until(tasks_of(kube, namespace, "every-ten"), lambda tasks: len(tasks) == 2)
        assert [t.name for t in tasks] == sorted([task_name("every-ten", first), task_name("every-ten", second)])
        status = (await until(schedule_of(kube, namespace, "every-ten"), lambda s: len(s.status.active) == 2)).status
        assert status.last_schedule_time == second
        assert status.next_schedule_time == second + timedelta(minutes=10)
        assert [record.scheduled_time for record in status.run_history] == [second, first]
        # time standing still at a slot fires nothing more, and a settled schedule is not written again
        settled = (await kube.get(TaskSchedule, "every-ten", namespace)).metadata.resource_version
        await asyncio.sleep(0.5)
        assert len(await tasks_of(kube, namespace, "every-ten")()) == 2
        assert (await kube.get(TaskSchedule, "every-ten", namespace)).metadata.resource_version == settled


async def test_concurrency_policies(kube: Kube, namespace: str, clock: Clock) -> None:
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05) as controller:
        for policy in ("Allow", "Forbid", "Replace"):
            await kube.create(schedule_body(policy.lower(), namespace, concurrencyPolicy=policy))
        first, second = slots(TEN_MINUTES, clock.now, 2)
        await move(controller, clock, first + timedelta(seconds=1))
        for policy in ("allow", "forbid", "replace"):
            await until(tasks_of(kube, namespace, policy), lambda tasks: len(tasks) == 1)
        await move(controller, clock, second + timedelta(seconds=1))  # the first tasks are still Pending: no nodes

        allowed = await until(tasks_of(kube, namespace, "allow"), lambda tasks: len(tasks) == 2)
        assert {task.phase for task in allowed} == {"Pending"}

        forbid = await until(schedule_of(kube, namespace, "forbid"), lambda s: s.status.last_schedule_time == second)
        assert len(await tasks_of(kube, namespace, "forbid")()) == 1
        skipped = forbid.status.run_history[0]
        assert (skipped.phase, skipped.scheduled_time) == ("Skipped", second)
        assert skipped.message == f"{task_name('forbid', first)} still active (concurrencyPolicy Forbid)"

        replaced = await until(
            tasks_of(kube, namespace, "replace"), lambda tasks: len(tasks) == 2 and tasks[0].phase == "Failed"
        )
        old, new = replaced  # names sort by slot
        assert (old.status.failure_reason, new.phase) == ("Cancelled", "Pending")
        replace = await until(schedule_of(kube, namespace, "replace"), lambda s: s.status.active == [new.name])
        assert [record.phase for record in replace.status.run_history] == ["Pending", "Failed"]


async def test_catch_up_after_an_outage_fires_once(kube: Kube, namespace: str, clock: Clock) -> None:
    first = slots(TEN_MINUTES, clock.now, 1)[0]
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05) as controller:
        await kube.create(schedule_body("run-once", namespace))
        await kube.create(schedule_body("skip", namespace, catchUp="Skip"))
        await move(controller, clock, first + timedelta(seconds=1))
        await until(tasks_of(kube, namespace, "run-once"), lambda tasks: len(tasks) == 1)
        await until(tasks_of(kube, namespace, "skip"), lambda tasks: len(tasks) == 1)
    # the controller is down for an hour: six slots pass
    clock.now = first + timedelta(hours=1, minutes=5)
    latest = first + timedelta(hours=1)
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05):
        tasks = await until(tasks_of(kube, namespace, "run-once"), lambda tasks: len(tasks) == 2)
        assert tasks[1].name == task_name("run-once", latest)
        skip = await until(schedule_of(kube, namespace, "skip"), lambda s: s.status.last_schedule_time == latest)
        assert skip.status.run_history[0].phase == "Skipped"
        assert "missed" in (skip.status.run_history[0].message or "")
        await asyncio.sleep(0.3)
        assert len(await tasks_of(kube, namespace, "run-once")()) == 2
        assert len(await tasks_of(kube, namespace, "skip")()) == 1
    reasons = {event["reason"] for event in await events(kube, namespace) if event["involvedObject"]["name"] == "skip"}
    assert "FireSkipped" in reasons


async def test_suspend_and_manual_triggers(kube: Kube, namespace: str, clock: Clock, cluster: Cluster) -> None:
    foreman = ForemanClient(kube, namespace)
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05) as controller:
        await kube.create(schedule_body("paused", namespace, suspend=True))
        await move(controller, clock, clock.now + timedelta(hours=1))
        paused = await until(schedule_of(kube, namespace, "paused"), lambda s: s.status.conditions != [])
        assert paused.status.next_schedule_time is None
        assert await tasks_of(kube, namespace, "paused")() == []

        name = await foreman.trigger("paused", "release-42")
        assert name == manual_task_name("paused", "release-42")
        (task,) = await until(tasks_of(kube, namespace, "paused"), lambda tasks: len(tasks) == 1)
        assert task.name == name
        await until(schedule_of(kube, namespace, "paused"), lambda s: s.status.last_trigger == "release-42")
        with pytest.raises(AlreadyTriggered):  # the same id again: nothing, and it says so
            await foreman.trigger("paused", "release-42")
        code, out, err = await foreman_cli(
            cluster, "schedule", "trigger", "paused", "--id", "release-42", "-n", namespace
        )
        assert (code, out.strip()) == (
            0,
            f"taskschedule/paused already fired for id 'release-42' ({name}); not fired again",
        ), err
        code, out, err = await foreman_cli(
            cluster, "schedule", "trigger", "paused", "--id", "release-43", "-n", namespace
        )
        assert code == 0, err
        second = manual_task_name("paused", "release-43")
        assert f"agentictask/{second}" in out
        tasks = await until(tasks_of(kube, namespace, "paused"), lambda tasks: len(tasks) == 2)
        assert {task.name for task in tasks} == {name, second}
        await asyncio.sleep(0.3)
        assert len(await tasks_of(kube, namespace, "paused")()) == 2
        history = (await kube.get(TaskSchedule, "paused", namespace)).status.run_history
        assert {record.trigger for record in history} == {"release-42", "release-43"}


async def test_history_limits_and_a_restart_between_fire_and_finish(kube: Kube, namespace: str, clock: Clock) -> None:
    body = schedule_body("kept", namespace, successfulTasksHistoryLimit=1, failedTasksHistoryLimit=1, maxRunHistory=3)
    fires = slots(TEN_MINUTES, clock.now, 4)
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05) as controller:
        await kube.create(body)
        await move(controller, clock, fires[0] + timedelta(seconds=1))
        (first,) = await until(tasks_of(kube, namespace, "kept"), lambda tasks: len(tasks) == 1)
    await finish(kube, first)  # finished while no controller runs
    clock.now = fires[0] + timedelta(seconds=30)
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05) as controller:
        kept = await until(schedule_of(kube, namespace, "kept"), lambda s: newest_phase(s) == "Succeeded")
        assert (kept.status.run_history[0].task_name, kept.status.run_history[0].verdict) == (first.name, "GO")
        assert kept.status.active == []
        assert len(await tasks_of(kube, namespace, "kept")()) == 1  # no second fire for the same slot
        for slot, outcome in zip(fires[1:], ("Failed", "Succeeded", "Failed"), strict=True):
            await move(controller, clock, slot + timedelta(seconds=1))
            name = task_name("kept", slot)
            fired = await until(
                tasks_of(kube, namespace, "kept"), lambda tasks, name=name: name in {t.name for t in tasks}
            )
            task = next(t for t in fired if t.name == name)
            await finish(kube, task, outcome, "GO" if outcome == "Succeeded" else "INCOMPLETE")
        wanted = {task_name("kept", fires[2]), task_name("kept", fires[3])}  # the newest of each outcome
        await until(tasks_of(kube, namespace, "kept"), lambda tasks: {t.name for t in tasks} == wanted)
        history = await until(schedule_of(kube, namespace, "kept"), lambda s: newest_phase(s) == "Failed")
        assert [(r.scheduled_time, r.phase) for r in history.status.run_history] == [
            (fires[3], "Failed"),
            (fires[2], "Succeeded"),
            (fires[1], "Failed"),
        ]


async def test_a_bad_schedule_is_rejected_with_a_reason_and_can_be_fixed(
    kube: Kube, namespace: str, clock: Clock
) -> None:
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05):
        await kube.create(schedule_body("feb-30", namespace, "0 0 30 2 *"))
        await kube.create(schedule_body("mars", namespace, timeZone="Mars/Olympus_Mons"))
        for name, reason in (("feb-30", "ImpossibleSchedule"), ("mars", "InvalidTimeZone")):
            rejected = await until(schedule_of(kube, namespace, name), lambda s: s.status.conditions != [])
            accepted = rejected.status.conditions[0]
            assert (accepted.type, accepted.status, accepted.reason) == ("Accepted", "False", reason)
        await kube.patch(TaskSchedule, "feb-30", {"spec": {"schedule": "0 0 28 2 *"}}, namespace=namespace)
        fixed = await until(schedule_of(kube, namespace, "feb-30"), lambda s: s.status.conditions[0].status == "True")
        assert fixed.status.next_schedule_time is not None
        assert fixed.status.observed_generation == 2
    warnings = [e for e in await events(kube, namespace) if e["reason"] in ("ImpossibleSchedule", "InvalidTimeZone")]
    assert len(warnings) == 2


async def test_sync_prunes_declarative_schedules_and_leaves_dynamic_ones(
    kube: Kube, namespace: str, cluster: Cluster, tmp_path: Path
) -> None:
    foreman = ForemanClient(kube, namespace)
    await foreman.schedule("planner-made", AgenticTask.new(prompt="poll"), cron="*/5 * * * *")
    await kube.create(schedule_body("old-declarative", namespace))
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "nightly.yaml").write_text((ROOT / "examples" / "schedule-nightly.yaml").read_text())

    code, out, err = await foreman_cli(
        cluster, "schedule", "sync", "-f", str(folder), "--prune", "--dry-run", "-n", namespace
    )
    assert code == 0, err
    assert "taskschedule/nightly-review created (dry run)" in out
    assert len(await foreman.list_schedules()) == 2
    code, out, err = await foreman_cli(cluster, "schedule", "sync", "-f", str(folder), "--prune", "-n", namespace)
    assert code == 0, err
    assert out.splitlines() == ["taskschedule/nightly-review created", "taskschedule/old-declarative pruned"]
    assert {s.name for s in await foreman.list_schedules()} == {"nightly-review", "planner-made"}

    (folder / "nightly.yaml").write_text((folder / "nightly.yaml").read_text().replace('"0 3 * * *"', '"0 4 * * *"'))
    code, out, _ = await foreman_cli(cluster, "schedule", "sync", "-f", str(folder), "--prune", "-n", namespace)
    assert out.splitlines() == ["taskschedule/nightly-review configured"]
    assert (await foreman.get_schedule("nightly-review")).spec.schedule == "0 4 * * *"
    code, out, _ = await foreman_cli(cluster, "schedule", "sync", "-f", str(folder), "-n", namespace)
    assert out.splitlines() == ["taskschedule/nightly-review unchanged"]

    # a file naming the dynamic schedule changes nothing, and says why in one line
    (folder / "clash.yaml").write_text(
        "kind: TaskSchedule\napiVersion: foreman.dev/v1alpha1\nmetadata: {name: planner-made}\n"
        "spec: {schedule: '@daily', taskTemplate: {spec: {kind: review}}}\n"
    )
    code, _, err = await foreman_cli(cluster, "schedule", "sync", "-f", str(folder), "--prune", "-n", namespace)
    assert code == 2
    assert "planner-made exists as a dynamic schedule" in err
    assert len(err.strip().splitlines()) == 1
    (folder / "clash.yaml").write_text("kind: TaskSchedule\nmetadata: {name: bad}\nspec: {schedule: '0 0 31 4 *'}\n")
    code, _, err = await foreman_cli(cluster, "schedule", "sync", "-f", str(folder), "-n", namespace)
    assert code == 2
    assert "taskTemplate" in err
    assert (await foreman.get_schedule("planner-made")).spec.schedule == "*/5 * * * *"
    # and the SDK will not take over the declarative one
    with pytest.raises(NotOurs):
        await foreman.schedule("nightly-review", AgenticTask.new(), cron="@hourly")


async def test_list_and_next_commands(kube: Kube, namespace: str, cluster: Cluster, clock: Clock) -> None:
    await ForemanClient(kube, namespace).schedule(
        "berlin", AgenticTask.new(prompt="p"), cron="30 2 * * *", time_zone="Europe/Berlin"
    )
    async with running_controller(kube, namespace, clock=clock, schedule_check_every=0.05):
        await until(schedule_of(kube, namespace, "berlin"), lambda s: s.status.next_schedule_time is not None)
    code, out, _ = await foreman_cli(cluster, "schedule", "list", "-n", namespace)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "NEXT", "SOURCE", "ACCEPTED"]
    assert row.split()[:2] == ["berlin", "30"]
    assert row.split()[-2:] == ["dynamic", "yes"]
    code, out, _ = await foreman_cli(cluster, "schedule", "next", "berlin", "-c", "3", "-n", namespace)
    assert code == 0
    assert len(out.splitlines()) == 3
    assert all(" 02:30 " in line or " 03:00 " in line for line in out.splitlines())
    code, _, err = await foreman_cli(cluster, "schedule", "next", "--cron", "0 0 30 2 *")
    assert (code, err.strip()) == (2, "error: ImpossibleSchedule: '0 0 30 2 *' matches no date, so it would never fire")
    code, _, err = await foreman_cli(cluster, "schedule", "trigger", "ghost", "-n", namespace)
    assert (code, err.strip()) == (2, f"error: no TaskSchedule 'ghost' in namespace {namespace}")


async def test_the_nightly_example_fires_at_3_in_berlin_and_runs(
    kube: Kube, namespace: str, cluster: Cluster, clock: Clock
) -> None:
    """kubectl apply the example; at the next 03:00 Europe/Berlin a task is created, runs on a worker, and lands in
    the schedule's history."""
    process = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(cluster.kubeconfig()), "-n", namespace, "apply", "-f",
        str(ROOT / "examples" / "schedule-nightly.yaml"), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await process.communicate()
    assert process.returncode == 0
    three_am = parse("0 3 * * *", "Europe/Berlin").next_after(clock.now)
    clock.now = three_am - timedelta(seconds=2)
    node = f"nightly-{uuid.uuid4().hex[:6]}"
    async with (
        running_controller(kube, namespace, clock=clock, schedule_check_every=0.05) as controller,
        running_worker(kube, node, namespace),
    ):
        await move(controller, clock, three_am + timedelta(seconds=1))
        (task,) = await until(tasks_of(kube, namespace, "nightly-review"), lambda tasks: len(tasks) == 1)
        assert task.name == task_name("nightly-review", three_am)
        assert task.metadata.labels["team"] == "platform"
        nightly = await until(
            schedule_of(kube, namespace, "nightly-review"),
            lambda s: newest_phase(s) == "Succeeded",
            timeout=30,
        )
        record = nightly.status.run_history[0]
        assert (record.task_name, record.verdict, record.scheduled_time) == (task.name, "GO", three_am)
        assert nightly.status.next_schedule_time == parse("0 3 * * *", "Europe/Berlin").next_after(three_am)
