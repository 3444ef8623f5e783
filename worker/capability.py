"""Capability detection as pure parsers over what the system tools print (unit-tested on recorded outputs).

`foreman.worker.detect` runs the tools; everything here is text in, numbers out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from foreman.api.models.nodes import Accelerator

GIB = 1024**3


@dataclass(frozen=True)
class Gpus:
    count: int
    memory_gb: float  # total over all devices


def parse_nvidia_smi(output: str) -> Gpus | None:
    """`nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`: one `name, MiB` line per GPU."""
    sizes = []
    for line in output.strip().splitlines():
        name, _, mib = line.rpartition(",")
        if name and mib.strip().isdigit():
            sizes.append(int(mib) / 1024)
    return Gpus(len(sizes), round(sum(sizes), 1)) if sizes else None


def parse_rocm_smi(output: str) -> Gpus | None:
    """`rocm-smi --showmeminfo vram --json`: {"card0": {"VRAM Total Memory (B)": "..."}, ...}."""
    try:
        cards = json.loads(output)
    except ValueError:
        return None
    sizes = [
        int(value) / GIB
        for card, fields in cards.items()
        if card.startswith("card") and isinstance(fields, dict)
        for key, value in fields.items()
        if key.startswith("VRAM Total Memory") and str(value).isdigit()
    ]
    return Gpus(len(sizes), round(sum(sizes), 1)) if sizes else None


@dataclass(frozen=True)
class Memory:
    total_gb: float
    available_gb: float


def parse_meminfo(text: str) -> Memory:
    """Linux /proc/meminfo (kB values)."""
    values = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+):\s+(\d+) kB", text, re.MULTILINE)}
    total = values["MemTotal"]
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return Memory(round(total / 1024**2, 1), round(available / 1024**2, 1))


def parse_macos_memory(memsize: str, vm_stat: str) -> Memory:
    """`sysctl -n hw.memsize` (bytes) and `vm_stat` (pages free / inactive / speculative are reclaimable)."""
    total = int(memsize.strip())
    page = int(m[1]) if (m := re.search(r"page size of (\d+) bytes", vm_stat)) else 4096
    pages = {m[1]: int(m[2]) for m in re.finditer(r"^Pages ([\w ]+?):\s+(\d+)\.", vm_stat, re.MULTILINE)}
    free = sum(pages.get(kind, 0) for kind in ("free", "inactive", "speculative")) * page
    return Memory(round(total / GIB, 1), round(free / GIB, 1))


def choose_accelerator(system: str, machine: str, cuda: Gpus | None, rocm: Gpus | None) -> tuple[Accelerator, int]:
    """cuda when nvidia-smi answers, else rocm when rocm-smi does, else metal on Apple Silicon, else cpu."""
    if cuda:
        return "cuda", cuda.count
    if rocm:
        return "rocm", rocm.count
    if system == "Darwin" and machine == "arm64":
        return "metal", 1
    return "cpu", 0


UNIFIED_GPU_SHARE = 0.75
"""Of an Apple Silicon Mac's memory, what its GPU may wire for model weights by default (macOS caps it near 3/4)."""


def model_memory(accelerator: Accelerator, cuda: Gpus | None, rocm: Gpus | None, total_ram_gb: float) -> float | None:
    """Memory the inference server loads models into, in GB: the GPUs' VRAM, a Mac's GPU share of its unified memory,
    a CPU node's RAM (none: not known)."""
    if accelerator == "cuda" and cuda:
        return cuda.memory_gb
    if accelerator == "rocm" and rocm:
        return rocm.memory_gb
    if accelerator == "metal":
        return round(total_ram_gb * UNIFIED_GPU_SHARE, 1) if total_ram_gb else None
    return round(total_ram_gb, 1) if accelerator == "cpu" and total_ram_gb else None
