"""`foreman uninstall --foreman-namespace`: the one option of the `foreman node` commands, flag and environment."""

from typing import Any

import pytest
from typer.testing import CliRunner

from foreman.cli import app as cli


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `foreman uninstall` asked uninstall_from for (no cluster: a Kube that is never used)."""
    seen: dict[str, Any] = {}

    class NoKube:
        async def __aenter__(self) -> "NoKube":
            return self

        async def __aexit__(self, *_: object) -> None:
            return None

    async def connect(_: str | None) -> NoKube:
        return NoKube()

    async def uninstall_from(_: NoKube, **options: Any) -> list[str]:
        seen.update(options)
        return ["ServiceAccount/foreman-worker-gpu-01"]

    monkeypatch.setattr(cli.Kube, "connect", connect)
    monkeypatch.setattr(cli, "uninstall_from", uninstall_from)
    monkeypatch.delenv("FOREMAN_NAMESPACE", raising=False)
    return seen


def test_uninstall_looks_for_joined_identities_in_the_namespace_given(asked: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli.app, ["uninstall"])
    assert result.exit_code == 0, result.output
    assert asked == {"purge": False, "namespace": "foreman-system"}
    result = CliRunner().invoke(cli.app, ["uninstall", "--foreman-namespace", "fleet-ops"])
    assert (result.exit_code, asked["namespace"]) == (0, "fleet-ops")
    result = CliRunner().invoke(cli.app, ["uninstall", "--purge"], env={"FOREMAN_NAMESPACE": "from-env"})
    assert (result.exit_code, asked) == (0, {"purge": True, "namespace": "from-env"})
    assert "deleted ServiceAccount/foreman-worker-gpu-01" in result.output
