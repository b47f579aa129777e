"""Small timing helpers shared by the benchmarks (comparisons go through `harness.compare`)."""

from __future__ import annotations

import time


def milliseconds_since(start: float) -> float:
    """Milliseconds from `start`, a `time.perf_counter()` reading, to now."""
    return (time.perf_counter() - start) * 1000.0
