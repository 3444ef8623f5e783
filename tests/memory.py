"""This test process's memory, as the kernel counts it."""

from __future__ import annotations

from pathlib import Path


def peak_rss() -> int:
    """Bytes at the high-water mark of resident memory (VmHWM): what a test compares before and after."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")
