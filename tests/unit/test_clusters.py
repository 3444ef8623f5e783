"""`--k8s-provider kind` / `k3d` as far as a machine without Docker can take it: pytest-kubernetes is asked for the
cluster, and what stops it is one line naming the tool and what it said."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import clusters

pytestmark = pytest.mark.timeout(30, func_only=True)  # NB: it starts real cluster providers that fail

ROOT = Path(__file__).parents[2]
ONE_INTEGRATION_TEST = "tests/integration/test_foundation.py::test_kubectl_lists_the_crds_and_applies_the_examples"
NO_DOCKER = "ERROR: failed to create cluster: failed to get docker info: Cannot connect to the Docker daemon"


def test_a_provider_whose_tool_is_missing_is_one_line_before_any_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    for provider in ("kind", "k3d"):
        with pytest.raises(pytest.UsageError) as refused:
            clusters.check_provider(provider)
        assert str(refused.value) == (
            f"--k8s-provider {provider}: `{provider}` is not on PATH (it and a Docker engine are needed; without "
            "them, leave --k8s-provider out to run on the local control plane)"
        )
    clusters.check_provider(None)  # our control plane needs no tool of pytest-kubernetes'
    clusters.check_provider("external")


def test_a_provider_that_cannot_create_its_cluster_says_why_in_one_line(tmp_path: Path) -> None:
    """The whole path of `--k8s-provider kind` through pytest-kubernetes (its k8s_manager fixture, its kind manager's
    create) up to what kind answers on a machine without a Docker engine, from a stand-in `kind` (the real one needs
    Docker); pytest stops before any test with kind's own words on one line."""
    kind = tmp_path / "kind"
    kind.write_text(f"#!/bin/sh\necho '{NO_DOCKER}' >&2\nexit 1\n")
    kind.chmod(0o755)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--k8s-provider", "kind",
               ONE_INTEGRATION_TEST]  # fmt: skip
    environment = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    run = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=100)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    said = [line for line in run.stdout.splitlines() if "--k8s-provider" in line]
    assert said == [f"! _pytest.outcomes.Exit: --k8s-provider kind: {NO_DOCKER} !"], run.stdout
