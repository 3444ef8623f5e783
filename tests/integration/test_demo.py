"""`foreman demo` (the README's main command) as a smoke test: headless, its own control plane, exit 0."""

import subprocess
import sys


def test_demo_runs_end_to_end() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "foreman.cli", "demo", "--timeout", "120"], capture_output=True, text=True, timeout=300
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "all 15 tasks ended as expected" in demo.stdout
    assert "fleet-probe" in demo.stdout  # the schedules table
    assert "nightly-review" in demo.stdout
    assert "Traceback" not in demo.stderr
