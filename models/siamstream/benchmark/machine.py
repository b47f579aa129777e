"""The machine a benchmark ran on, printed with its figures: ratios are only comparable on one machine."""

from __future__ import annotations

from pathlib import Path

import torch

# CPU flags that give bf16 arithmetic in hardware; without them oneDNN emulates it.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_model(cpuinfo: str) -> str:
    """The first `model name` of a /proc/cpuinfo text ("unknown" where there is none, e.g. on ARM)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def describe_machine(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> dict:
    """CPU model, PyTorch's CPU capability (the widest vector ISA its kernels use), its intra-op threads
    and the CPU's native bf16 flags."""
    cpuinfo = cpuinfo_path.read_text() if cpuinfo_path.exists() else ""
    flags = cpu_flags(cpuinfo)
    return {
        "cpu": cpu_model(cpuinfo),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "native_bf16_flags": [flag for flag in NATIVE_BF16_FLAGS if flag in flags],
        "torch": torch.__version__,
    }


def machine_line(machine: dict) -> str:
    native = ", ".join(machine["native_bf16_flags"]) or "none"
    return (
        f"CPU {machine['cpu']} (PyTorch capability {machine['cpu_capability']}, native bf16: {native}), "
        f"{machine['threads']} torch threads, torch {machine['torch']}"
    )
