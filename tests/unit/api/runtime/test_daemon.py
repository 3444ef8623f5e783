import gc
import platform
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from foreman.api.runtime.daemon import YOUNG_COLLECTION_EVERY, release_free_memory, settle_heap
from foreman.cli.app import app
from foreman.controller.cache import Cache
from foreman.worker.config import WorkerConfig
from foreman.worker.metrics import WorkerMetrics
from foreman.worker.registrar import Registrar, WorkerStalled
from tests.factories import T0, node


def registrar(failures: int, exit_after: float) -> Registrar:
    kube: Any = SimpleNamespace(consecutive_failures=failures)
    config = WorkerConfig(node_name="n", degraded_after_failures=3, exit_after_degraded=exit_after)
    return Registrar(kube, config, capability=None, metrics=WorkerMetrics(), running=lambda: 0)  # type: ignore[arg-type]


def test_degraded_after_three_failures_then_stalled_after_the_limit() -> None:
    healthy = registrar(failures=2, exit_after=0.05)
    healthy._check_degraded()
    assert not healthy.degraded
    cut_off = registrar(failures=3, exit_after=0.05)
    cut_off._check_degraded()
    assert cut_off.degraded
    import time

    time.sleep(0.06)
    with pytest.raises(WorkerStalled, match="unreachable"):
        cut_off._check_degraded()
    cut_off.kube.consecutive_failures = 0  # type: ignore[misc]
    cut_off._check_degraded()
    assert not cut_off.degraded


def test_worker_outcomes_keep_verdicts_and_failure_reasons_apart() -> None:
    metrics = WorkerMetrics()
    metrics.tasks_run.labels("GO", "").inc()
    metrics.tasks_run.labels("INCOMPLETE", "Timeout").inc()
    assert metrics.registry.get_sample_value("foreman_worker_tasks_total", {"verdict": "GO", "reason": ""}) == 1
    timeouts = {"verdict": "INCOMPLETE", "reason": "Timeout"}
    assert metrics.registry.get_sample_value("foreman_worker_tasks_total", timeouts) == 1


def test_fleet_nodes_are_counted_by_phase_with_zeros() -> None:
    cache = Cache()
    for name, phase in (("a", "Ready"), ("b", "Ready"), ("c", "Draining")):
        cache.upsert_node(node(name, phase=phase), T0)
    assert cache.nodes_by_phase() == {"Ready": 2, "Draining": 1, "Stopped": 0, "NotReady": 0, "Unknown": 0}


def test_install_dry_run_and_manifests_need_no_cluster() -> None:
    runner = CliRunner()
    dry = runner.invoke(app, ["install", "--dry-run"])
    assert dry.exit_code == 0
    assert "would apply CustomResourceDefinition/agentictasks.foreman.dev" in dry.output
    assert "would apply ClusterRole/foreman-worker" in dry.output
    printed = runner.invoke(app, ["manifests", "--with-workloads"])
    assert printed.exit_code == 0
    assert "kind: DaemonSet" in printed.output
    assert "kind: Deployment" in printed.output


def test_settling_the_heap_freezes_start_up_objects_and_collects_the_young_less_often() -> None:
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 10_000  # the imports of a daemon, at least
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY > thresholds[0]
        garbage = [[]]  # a cycle: refcounting alone cannot free it, the collector still does
        garbage[0].append(garbage)
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_free_memory_goes_back_to_the_system_where_the_c_library_is_glibc() -> None:
    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")
