"""Side-by-side timing of alternatives ("arms") in one run: how this project's benchmarks time things.

`compare` calls every arm `warmup` times untimed, then `repeats` times timed, one call of each arm per
round with the order of the arms rotated by one every round. A drift of the machine's load (another job
starting, the CPU clocking down) then falls on all arms alike, and no arm always runs first or always
right after the same other arm. Figures are medians with their interquartile range: a loaded machine's
outliers are one-sided, so a mean alone would charge them to whichever arm they happened to hit.

Why at least two warm-up calls per arm: TorchScript's profiling executor records shapes on the first call
of a graph and optimises it on a later one, so the first two calls time the compiler, not the model. An
arm that calls a module with several shapes has to warm every shape; an arm making the same calls every
time (as all arms here do) warms them all.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MIN_WARMUP = 2
MIN_REPEATS = 3  # fewer timed calls have no meaningful quartiles


@dataclass(frozen=True)
class Summary:
    """Median, quartiles and mean of `n` timed samples, all in milliseconds."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    mean_ms: float
    n: int

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict[str, float | int]:
        return {
            "median_ms": self.median_ms,
            "q1_ms": self.q1_ms,
            "q3_ms": self.q3_ms,
            "iqr_ms": self.iqr_ms,
            "mean_ms": self.mean_ms,
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, figures: Mapping[str, float | int]) -> Summary:
        """The summary of `to_dict`'s output (extra keys, like a comparison's `ratio`, are ignored)."""
        return cls(
            median_ms=float(figures["median_ms"]),
            q1_ms=float(figures["q1_ms"]),
            q3_ms=float(figures["q3_ms"]),
            mean_ms=float(figures["mean_ms"]),
            n=int(figures["n"]),
        )


def summarize(samples_ms: Sequence[float]) -> Summary:
    """Median and quartiles of `samples_ms` (at least 2), quartiles interpolated linearly between order
    statistics (numpy's default `percentile`; `statistics.quantiles(method="inclusive")`)."""
    if len(samples_ms) < 2:
        raise ValueError(f"need at least 2 samples for quartiles, got {len(samples_ms)}")
    q1, _, q3 = statistics.quantiles(samples_ms, n=4, method="inclusive")
    return Summary(
        median_ms=statistics.median(samples_ms),
        q1_ms=q1,
        q3_ms=q3,
        mean_ms=statistics.fmean(samples_ms),
        n=len(samples_ms),
    )


def median_interval(
    samples_ms: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of `samples_ms` (at least 2): how well a run's median
    is pinned down by its samples, e.g. of paired per-call differences between two arms."""
    if len(samples_ms) < 2:
        raise ValueError(f"need at least 2 samples for an interval, got {len(samples_ms)}")
    values = np.asarray(samples_ms, dtype=np.float64)
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    medians = np.median(values[draws], axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class ArmTiming:
    """One arm's timed calls: their summary and its median over the reference arm's median."""

    summary: Summary
    ratio: float


@dataclass(frozen=True)
class Comparison:
    """The arms of one `compare` run, in the order they were given."""

    arms: dict[str, ArmTiming]
    reference: str
    warmup: int
    repeats: int

    def to_dict(self) -> dict:
        return {
            "reference": self.reference,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "arms": {name: {**arm.summary.to_dict(), "ratio": arm.ratio} for name, arm in self.arms.items()},
        }

    @classmethod
    def from_dict(cls, figures: Mapping) -> Comparison:
        """The comparison of `to_dict`'s output (e.g. read back from a benchmark's JSON)."""
        return cls(
            arms={
                name: ArmTiming(Summary.from_dict(arm), arm["ratio"]) for name, arm in figures["arms"].items()
            },
            reference=figures["reference"],
            warmup=figures["warmup"],
            repeats=figures["repeats"],
        )


def rotating_rounds(names: Sequence[str], rounds: int, first_round: int = 0) -> Iterator[list[str]]:
    """The call order of each round: round r starts at arm r mod len(names) and wraps around."""
    for index in range(first_round, first_round + rounds):
        shift = index % len(names)
        yield [*names[shift:], *names[:shift]]


def compare(
    arms: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = MIN_WARMUP,
    reference: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Comparison:
    """Time the zero-argument callables `arms` side by side (see the module docstring).

    Each arm is called `warmup` (>= 2) times untimed, then `repeats` (>= 3) times timed, arms interleaved
    call by call in rotating order; the warm-up rounds rotate too. `reference` (default: the first arm)
    is the arm the ratios divide by. `clock` returns seconds (injectable for tests). The garbage collector
    is off while arms run, as in `timeit`, so a collection is not charged to whichever call triggered it.
    """
    if not arms:
        raise ValueError("compare needs at least one arm")
    if warmup < MIN_WARMUP:
        raise ValueError(f"warmup must be at least {MIN_WARMUP} (TorchScript optimises on a later call)")
    if repeats < MIN_REPEATS:
        raise ValueError(f"repeats must be at least {MIN_REPEATS}")
    names = list(arms)
    reference = names[0] if reference is None else reference
    if reference not in arms:
        raise ValueError(f"reference arm {reference!r} is not one of {names}")
    samples_ms: dict[str, list[float]] = {name: [] for name in names}
    collecting = gc.isenabled()
    gc.disable()
    try:
        for order in rotating_rounds(names, warmup):
            for name in order:
                arms[name]()
        for order in rotating_rounds(names, repeats, first_round=warmup):
            for name in order:
                start = clock()
                arms[name]()
                samples_ms[name].append((clock() - start) * 1000.0)
    finally:
        if collecting:
            gc.enable()
    summaries = {name: summarize(samples) for name, samples in samples_ms.items()}
    reference_ms = summaries[reference].median_ms
    return Comparison(
        arms={
            name: ArmTiming(summary, summary.median_ms / reference_ms if reference_ms > 0 else float("nan"))
            for name, summary in summaries.items()
        },
        reference=reference,
        warmup=warmup,
        repeats=repeats,
    )


def summary_row(label: str, summary: Summary, width: int = 24) -> str:
    """`label  median  q1-q3` in ms, a row of a table under `table_header`."""
    quartiles = f"{summary.q1_ms:.2f}-{summary.q3_ms:.2f}"
    return f"  {label:<{width}}{summary.median_ms:>11.2f}{quartiles:>21}"


def table_header(width: int = 24, ratio_of: str | None = None) -> str:
    """The column titles of `summary_row`s, and of a ratio column to `ratio_of` where given."""
    header = f"  {'':<{width}}{'median ms':>11}{'quartiles ms':>21}"
    return header + (f"    x {ratio_of}" if ratio_of else "")


def comparison_lines(comparison: Comparison, width: int = 24) -> list[str]:
    """A table of `comparison`: per arm its median, quartiles and ratio to the reference arm."""
    lines = [table_header(width, comparison.reference)]
    for name, arm in comparison.arms.items():
        lines.append(f"{summary_row(name, arm.summary, width)}{arm.ratio:>8.2f}")
    return lines
