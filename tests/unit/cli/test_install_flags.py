"""`foreman manifests` / `foreman install --transcript-namespace`: the DaemonSet worker's transcript rights in those
namespaces only (the chart's worker.transcriptNamespaces renders the same objects: tests/integration/test_chart.py)."""

from typing import Any

import yaml
from typer.testing import CliRunner

from foreman.api.tooling.manifests import WORKER, WORKER_TRANSCRIPT_RULE, WORKER_TRANSCRIPTS
from foreman.cli.app import app


def printed(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["manifests", *args])
    assert result.exit_code == 0, result.output
    return [document for document in yaml.safe_load_all(result.output) if document]


def worker_role(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == WORKER)


def test_transcript_namespaces_move_the_workers_configmap_rule_into_a_role_in_each() -> None:
    assert WORKER_TRANSCRIPT_RULE in worker_role(printed())["rules"]
    narrowed = printed("--transcript-namespace", "team", "--transcript-namespace", "ops")
    assert not any("configmaps" in rule["resources"] for rule in worker_role(narrowed)["rules"])
    granted = [d for d in narrowed if d["metadata"]["name"] == WORKER_TRANSCRIPTS]
    assert sorted((d["kind"], d["metadata"]["namespace"]) for d in granted) == [
        ("Role", "ops"), ("Role", "team"), ("RoleBinding", "ops"), ("RoleBinding", "team"),
    ]  # fmt: skip
    assert all(d["rules"] == [WORKER_TRANSCRIPT_RULE] for d in granted if d["kind"] == "Role")
    bindings = [d for d in granted if d["kind"] == "RoleBinding"]
    assert all(d["subjects"][0]["name"] == WORKER and d["roleRef"]["kind"] == "Role" for d in bindings)
