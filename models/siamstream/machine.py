"""This CPU as /proc/cpuinfo describes it: its model name and its instruction-set flags."""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

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
    """The instruction-set flags of a /proc/cpuinfo text: x86's `flags`, ARM's `Features` (empty where
    there are neither)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def read_cpuinfo(path: Path = CPUINFO) -> str:
    """/proc/cpuinfo's text, or "" where the system has none."""
    return path.read_text() if path.exists() else ""
