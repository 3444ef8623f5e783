from pathlib import Path

from foreman.worker.capability import (
    Gpus,
    Memory,
    choose_accelerator,
    model_memory,
    parse_macos_memory,
    parse_meminfo,
    parse_nvidia_smi,
    parse_rocm_smi,
)

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_nvidia_smi() -> None:
    assert parse_nvidia_smi(sample("nvidia-smi-2xh100.txt")) == Gpus(2, 159.3)
    assert parse_nvidia_smi(sample("nvidia-smi-failed.txt")) is None
    assert parse_nvidia_smi("") is None


def test_rocm_smi() -> None:
    assert parse_rocm_smi(sample("rocm-smi-mi210.json")) == Gpus(2, 128.0)
    assert parse_rocm_smi("not json") is None


def test_linux_and_macos_memory() -> None:
    assert parse_meminfo(sample("meminfo.txt")) == Memory(251.6, 192.1)
    # 16 KiB pages: (81634 + 1163457 + 18243) * 16384 bytes
    assert parse_macos_memory(sample("sysctl-hw.memsize-m2.txt"), sample("vm_stat-m2.txt")) == Memory(64.0, 19.3)


def test_accelerator_choice() -> None:
    assert choose_accelerator("Linux", "x86_64", Gpus(2, 160), None) == ("cuda", 2)
    assert choose_accelerator("Linux", "x86_64", None, Gpus(1, 64)) == ("rocm", 1)
    assert choose_accelerator("Darwin", "arm64", None, None) == ("metal", 1)
    assert choose_accelerator("Darwin", "x86_64", None, None) == ("cpu", 0)
    assert choose_accelerator("Linux", "aarch64", None, None) == ("cpu", 0)


def test_model_memory_is_vram_a_macs_gpu_share_or_a_cpu_nodes_ram() -> None:
    assert model_memory("cuda", Gpus(2, 160), None, 512) == 160
    assert model_memory("rocm", None, Gpus(1, 64), 128) == 64
    assert model_memory("metal", None, None, 64) == 48  # macOS lets the GPU wire about 3/4
    assert model_memory("cpu", None, None, 31.4) == 31.4
    assert model_memory("cuda", None, None, 64) is None  # said to be cuda, but no nvidia-smi: not known
    assert model_memory("cpu", None, None, 0) is None
