"""The gauges the alerts watch, read from the cache at scrape time."""

from datetime import timedelta

from foreman.controller.cache import Cache
from foreman.controller.metrics import ControllerMetrics
from foreman.controller.readings import read
from tests.factories import T0, node, task

NOW = T0 + timedelta(hours=1)


def filled() -> Cache:
    cache = Cache()
    cache.upsert_node(node("fresh"), NOW - timedelta(seconds=5))
    cache.upsert_node(node("gone", phase="NotReady"), T0)
    started = {"assignedNode": "fresh"}
    cache.upsert_task(task("late", phase="Running", timeoutSeconds=60, startedAt=NOW - timedelta(minutes=2), **started))
    cache.upsert_task(task("in-time", phase="Running", timeoutSeconds=600, startedAt=NOW, **started))
    cache.upsert_task(task("waiting", namespace="other"))
    cache.upsert_task(task("named", namespace="other", queue="team-a"))
    return cache


def test_readings_per_queue_node_and_namespace() -> None:
    waiting = [("other", "waiting"), ("other", "named"), ("other", "deleted-meanwhile")]
    readings = read(filled(), waiting, NOW)
    assert readings.waiting == {"default": 1, "team-a": 1}
    assert readings.running == {"default": 2, "team-a": 0}
    assert readings.heartbeat_age == {("fresh", "Ready"): 5.0, ("gone", "NotReady"): 3600.0}
    assert readings.past_timeout == {"ns": 1}


def test_a_queue_that_waits_with_nothing_running_reads_zero_running() -> None:
    """The starving alert compares waiting with running: an absent series would never match."""
    cache = Cache()
    cache.upsert_task(task("waiting"))
    readings = read(cache, [("ns", "waiting")], NOW)
    assert (readings.waiting, readings.running, readings.past_timeout) == ({"default": 1}, {"default": 0}, {})


def test_the_readings_are_served_at_each_scrape() -> None:
    cache = filled()
    metrics = ControllerMetrics()
    metrics.read_at_scrape(lambda: read(cache, [("other", "waiting")], NOW))
    sample = metrics.registry.get_sample_value
    assert sample("foreman_queue_waiting_tasks", {"queue": "default"}) == 1
    assert sample("foreman_queue_running_tasks", {"queue": "default"}) == 2
    assert sample("foreman_fleet_node_heartbeat_age_seconds", {"node": "gone", "phase": "NotReady"}) == 3600
    assert sample("foreman_tasks_past_timeout", {"namespace": "ns"}) == 1
    cache.remove_task(("ns", "late"))
    assert sample("foreman_tasks_past_timeout", {"namespace": "ns"}) == 0
