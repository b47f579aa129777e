"""Small timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def milliseconds_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def median_ms(run: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `run` in ms over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(milliseconds_since(start))
    return statistics.median(samples)
