"""Paired bootstrap confidence intervals for the difference between two trackers.

Both trackers are scored on the same sequences, each trained with the same seeds (seed `s` of one and seed
`s` of the other share the data order and the augmentation), so the per-(seed, sequence) differences are
paired. The bootstrap resamples seeds and sequences independently, with replacement, and takes the mean
difference over the resampled grid: the interval covers both sources of variation, training (seeds) and
test material (sequences).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Effect:
    """A mean difference (method - baseline) with its percentile bootstrap interval."""

    mean: float
    low: float
    high: float
    seeds: int
    sequences: int

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_bootstrap(
    method: np.ndarray,
    baseline: np.ndarray,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Effect:
    """The mean of `method - baseline` and its `confidence` interval.

    `method` and `baseline` are `(seeds, sequences)` arrays of a per-sequence score (success AUC, failures,
    ...), row `s` of each from the models trained with seed `s`. NaN entries are not allowed: a score that
    is undefined for a sequence should be left out of both arrays.
    """
    method = np.asarray(method, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    if method.shape != baseline.shape or method.ndim != 2 or 0 in method.shape:
        raise ValueError(f"need two equal (seeds, sequences) arrays, got {method.shape} and {baseline.shape}")
    if not (np.isfinite(method).all() and np.isfinite(baseline).all()):
        raise ValueError("scores must be finite")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    difference = method - baseline
    seeds, sequences = difference.shape
    rng = np.random.default_rng(seed)
    seed_rows = rng.integers(0, seeds, size=(resamples, seeds))
    sequence_columns = rng.integers(0, sequences, size=(resamples, sequences))
    # Mean over the resampled grid = mean over resampled seeds of (mean over resampled sequences).
    per_seed = difference[:, sequence_columns].mean(axis=2)  # (seeds, resamples)
    means = np.take_along_axis(per_seed.T, seed_rows, axis=1).mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Effect(float(difference.mean()), float(low), float(high), seeds, sequences)
