"""The machine a benchmark ran on, printed with its figures: ratios are only comparable on one machine."""

from __future__ import annotations

from pathlib import Path

import torch

from siamstream.machine import CPUINFO, NATIVE_BF16_FLAGS, cpu_flags, cpu_model, read_cpuinfo


def describe_machine(cpuinfo_path: Path = CPUINFO) -> dict:
    """CPU model, PyTorch's CPU capability (the widest vector ISA its kernels use), its intra-op threads
    and the CPU's native bf16 flags."""
    cpuinfo = read_cpuinfo(cpuinfo_path)
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
