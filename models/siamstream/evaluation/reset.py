"""VOT-style evaluation with resets: failures, accuracy and expected average overlap (EAO).

The protocol of the VOT challenges (2016-2019 "baseline" experiment), which SiamMargin's headline
numbers use:
- the tracker starts on frame 0 at the ground truth; a frame whose predicted box does not overlap the
  ground truth at all (IoU 0) on a scored frame is a failure;
- `SKIP_AFTER_FAILURE` (5) frames after a failure the tracker is started again at the ground truth (on the
  first scored frame from there on);
- accuracy is the mean IoU over tracked frames, leaving out the `BURN_IN` (10) frames after each start,
  whose overlap is high by construction;
- robustness is the number of failures.

EAO. Each start opens a segment: the overlaps of the frames tracked after it, up to and including the
failure that ends it (IoU 0) or the end of the sequence. For a length `n`, a segment that failed counts
with its overlaps padded with zeros to `n` frames; a segment that reached the end of the sequence counts
only if it is at least `n` frames long. The expected average overlap curve is, for each `n`, the mean over
the segments that count of their mean overlap over the first `n` frames; the EAO is that curve averaged
over `n` in [low, high]. VOT picks [low, high] from its dataset's sequence lengths; for a suite of
sequences of one length L we take [1, L - 1], every length a segment can have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from siamstream.evaluation.metrics import overlap, valid_frames

SKIP_AFTER_FAILURE = 5
BURN_IN = 10

# Returns the predicted xywh box of frame `index`, (re)starting on it at `start_box` when one is given.
StepFn = Callable[[int, "np.ndarray | None"], Sequence[float]]


@dataclass(frozen=True, eq=False)
class ResetRun:
    """One sequence tracked under the reset protocol.

    `overlaps` has one IoU per frame, NaN on frames not tracked (start frames, frames skipped after a
    failure, frames without a scored ground truth); `starts` are the frames the tracker was started on;
    `failures` the frames where it failed; `segments` the overlaps after each start (see the module
    docstring), `segment_failed` whether each ended in a failure.
    """

    overlaps: np.ndarray
    starts: tuple[int, ...]
    failures: tuple[int, ...]
    segments: tuple[np.ndarray, ...]
    segment_failed: tuple[bool, ...]

    @property
    def accuracy_frames(self) -> np.ndarray:
        """Bool per frame: tracked and not within `BURN_IN` frames after a start."""
        keep = np.isfinite(self.overlaps)
        for start in self.starts:
            keep[start : start + BURN_IN + 1] = False
        return keep

    @property
    def accuracy(self) -> float:
        """Mean IoU over the accuracy frames (NaN when there are none)."""
        frames = self.accuracy_frames
        return float(self.overlaps[frames].mean()) if frames.any() else float("nan")


def run_with_resets(ground_truth: np.ndarray, step: StepFn, visible: np.ndarray | None = None) -> ResetRun:
    """Track one sequence of `len(ground_truth)` frames under the reset protocol.

    `step(index, start_box)` returns the predicted xywh box of frame `index` (image px); with a box it
    starts (or restarts) the tracker there on that frame and returns that box. Frames are asked for in
    increasing order, skipped frames never.
    """
    scored = valid_frames(ground_truth, visible)
    count = len(ground_truth)
    overlaps = np.full(count, np.nan)
    starts: list[int] = []
    failures: list[int] = []
    segments: list[np.ndarray] = []
    segment_failed: list[bool] = []
    index = _next_scored(scored, 0)
    while index is not None:
        step(index, ground_truth[index])
        starts.append(index)
        segment: list[float] = []
        failed = False
        index += 1
        while index < count:
            box = np.asarray(step(index, None), dtype=np.float64).reshape(1, 4)
            if scored[index]:
                iou = float(overlap(box, ground_truth[index : index + 1])[0])
                overlaps[index] = iou
                segment.append(iou)
                if iou <= 0.0:
                    failed = True
                    failures.append(index)
                    break
            index += 1
        segments.append(np.asarray(segment))
        segment_failed.append(failed)
        index = _next_scored(scored, index + SKIP_AFTER_FAILURE) if failed else None
    return ResetRun(overlaps, tuple(starts), tuple(failures), tuple(segments), tuple(segment_failed))


def _next_scored(scored: np.ndarray, first: int) -> int | None:
    later = np.flatnonzero(scored[first:])
    return int(first + later[0]) if later.size else None


def eao_curve(runs: Sequence[ResetRun], max_length: int) -> np.ndarray:
    """Expected average overlap for segment lengths 1..`max_length` (index n-1 holds length n); NaN where
    no segment counts."""
    curve = np.full(max_length, np.nan)
    segments = [
        (seg, failed) for run in runs for seg, failed in zip(run.segments, run.segment_failed, strict=True)
    ]
    for length in range(1, max_length + 1):
        means = []
        for segment, failed in segments:
            if failed:
                padded = np.zeros(length)
                kept = segment[:length]
                padded[: len(kept)] = kept
                means.append(padded.mean())
            elif len(segment) >= length:
                means.append(segment[:length].mean())
        if means:
            curve[length - 1] = float(np.mean(means))
    return curve


def expected_average_overlap(runs: Sequence[ResetRun], low: int, high: int) -> float:
    """EAO: the mean of `eao_curve` over segment lengths `low..high` (inclusive, 1-based)."""
    if not 1 <= low <= high:
        raise ValueError(f"EAO range must satisfy 1 <= low <= high, got [{low}, {high}]")
    curve = eao_curve(runs, high)[low - 1 : high]
    return float(np.nanmean(curve)) if np.isfinite(curve).any() else float("nan")
