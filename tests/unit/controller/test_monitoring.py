"""manifests/monitoring/: the alerts and the Grafana dashboard name only series the controller exports, with labels
those series have (a typo would make an alert silently never fire, a panel silently stay empty)."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from foreman.controller.metrics import ControllerMetrics
from foreman.controller.outcomes import Outcome
from foreman.controller.readings import Readings
from foreman.notifier.metrics import NotifierMetrics

MONITORING = Path(__file__).parents[3] / "manifests" / "monitoring"
RULES = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana-dashboard.json").read_text())
# NB: aggregation and matching clauses, and label matchers: every label an expression names
LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
MATCHERS = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")


def exported() -> dict[str, set[str]]:
    """Every series name a controller (and a notifier) serves, with its label names: one of each metric filled in
    and scraped."""
    metrics = ControllerMetrics()
    metrics.record(Outcome("ns", "q", "review", "GO", "Succeeded", 1.0, 1.0, prompt_tokens=1, completion_tokens=1))
    metrics.tasks.labels("Pending").set(1)
    metrics.nodes.labels("Ready").set(1)
    metrics.transitions.labels("FleetNodeAssigned").inc()
    metrics.time_to_place.observe(1)
    readings = Readings({"q": 1}, {"q": 1}, {("n", "Ready"): 1.0}, {"ns": 1})
    metrics.read_at_scrape(lambda: readings)
    notifier = NotifierMetrics()
    notifier.deliveries.labels("webhook", "failed").inc()
    notifier.latency.labels("webhook").observe(0.1)
    series: dict[str, set[str]] = {}
    scraped = generate_latest(metrics.registry).decode() + generate_latest(notifier.registry).decode()
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


SERIES = exported()


def names_and_labels(expr: str) -> tuple[set[str], set[str]]:
    names = set(re.findall(r"\bforeman_\w+", expr))
    labels = {label.strip() for group in LABEL_LISTS.findall(expr) for label in group.split(",") if label.strip()}
    return names, labels | set(MATCHERS.findall(expr))


def check(expr: str) -> None:
    names, labels = names_and_labels(expr)
    assert names, f"names no Foreman metric: {expr}"
    assert names <= SERIES.keys(), f"not exported: {names - SERIES.keys()}"
    known = set().union(*(SERIES[name] for name in names))
    assert labels <= known, f"labels {labels - known} not on {names}"


def test_the_rule_is_a_prometheus_rule_with_an_alert_per_concern() -> None:
    assert (RULES["apiVersion"], RULES["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    rules = [rule for group in RULES["spec"]["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {
        "ForemanQueueStarving", "ForemanNodeHeartbeatStale", "ForemanTaskPastTimeout", "ForemanDeliveriesFailing",
    }  # fmt: skip
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


@pytest.mark.parametrize("rule", [r for g in RULES["spec"]["groups"] for r in g["rules"]], ids=lambda r: r["alert"])
def test_every_alert_reads_exported_series_by_their_labels(rule: dict[str, Any]) -> None:
    check(rule["expr"])


def panels() -> list[dict[str, Any]]:
    return list(DASHBOARD["panels"])


def test_the_dashboard_is_laid_out_and_reads_its_datasource_variable() -> None:
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        assert panel["targets"]
    for name in ("namespace", "queue"):
        check(variables[name]["definition"])


@pytest.mark.parametrize("panel", panels(), ids=lambda p: p["title"])
def test_every_panel_reads_exported_series_by_their_labels(panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        check(target["expr"])


def test_the_checker_catches_a_misspelt_metric_or_label() -> None:
    with pytest.raises(AssertionError):
        check("foreman_queue_wating_tasks > 0")
    with pytest.raises(AssertionError):
        check("max by (queeu) (foreman_queue_waiting_tasks)")
