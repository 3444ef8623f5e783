"""Run the system tools and read the files capability detection needs (the parsing is in `capability`)."""

from __future__ import annotations

import asyncio
import platform
import shutil
from pathlib import Path

import structlog

from foreman.api.models.nodes import NodeCapability
from foreman.worker.capability import (
    Memory,
    choose_accelerator,
    model_memory,
    parse_macos_memory,
    parse_meminfo,
    parse_nvidia_smi,
    parse_rocm_smi,
)
from foreman.worker.config import WorkerConfig

log = structlog.get_logger("foreman.worker.detect")


async def run_tool(*argv: str, wait_seconds: float = 10.0) -> str | None:
    """stdout of a tool that is installed and answers with exit 0 in time, else None."""
    if shutil.which(argv[0]) is None:
        return None
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(wait_seconds):
            stdout, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        log.warning("tool did not answer", tool=argv[0], wait_seconds=wait_seconds)
        return None
    return stdout.decode(errors="replace") if process.returncode == 0 else None


async def memory() -> Memory:
    if platform.system() == "Darwin":
        memsize, vm_stat = await asyncio.gather(run_tool("sysctl", "-n", "hw.memsize"), run_tool("vm_stat"))
        if memsize and vm_stat:
            return parse_macos_memory(memsize, vm_stat)
        return Memory(0, 0)
    return parse_meminfo(await asyncio.to_thread(Path("/proc/meminfo").read_text))


async def detect(config: WorkerConfig) -> NodeCapability:
    """What this host offers, with the configured overrides applied."""
    nvidia, rocm, mem = await asyncio.gather(
        run_tool("nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"),
        run_tool("rocm-smi", "--showmeminfo", "vram", "--json"),
        memory(),
    )
    cuda, amd = parse_nvidia_smi(nvidia or ""), parse_rocm_smi(rocm or "")
    accelerator, count = choose_accelerator(platform.system(), platform.machine(), cuda, amd)
    kind = config.overrides.accelerator or accelerator
    ram = config.overrides.total_ramgb or mem.total_gb
    detected = NodeCapability(
        accelerator=accelerator,
        accelerator_count=count,
        total_ramgb=mem.total_gb,
        available_ramgb=mem.available_gb,
        model_memory_gb=model_memory(kind, cuda, amd, ram),
        max_context_tokens=config.max_context_tokens,
        installed_models=config.installed_models,
    )
    overrides = config.overrides.model_dump(exclude_none=True)
    return detected.model_copy(update=overrides) if overrides else detected
