"""`foreman demo` (the README's main command) as a smoke test: headless, its own control plane, exit 0."""

import subprocess
import sys

from foreman.api.tooling import gitea


def test_demo_runs_end_to_end() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "foreman.cli", "demo", "--timeout", "120"], capture_output=True, text=True, timeout=300
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "all 16 tasks ended as expected" in demo.stdout
    assert "dashboard: http://127.0.0.1:" in demo.stdout  # served while it ran; not waited on (no terminal)
    assert "end    GO (Submitted)" in demo.stdout  # the agent's transcript
    if gitea.missing() is None:
        assert "pull request on the local Gitea: http://127.0.0.1:" in demo.stdout
        assert "(Fixed add() in calc.py" in demo.stdout  # its title, read back from Gitea
    else:
        assert "the agent's task opens no pull request" in demo.stderr
        assert "branch foreman/fix-calc of the repository: " in demo.stdout
        assert "Fixed add() in calc.py" in demo.stdout  # the commit on the branch
    assert "fleet-probe" in demo.stdout  # the schedules table
    assert "nightly-review" in demo.stdout
    assert "Traceback" not in demo.stderr
