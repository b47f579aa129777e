"""The reset protocol (`evaluation.reset`) run on a tracker over a set of sequences, and its report.

Figures as in pysot's `toolkit/evaluation/ar_benchmark.py` and `eao_benchmark.py`: accuracy pools the
accuracy frames (IoUs outside the burn-in after each start) of all sequences, failures are summed over
sequences, and the EAO averages the expected-average-overlap curve over `[low, high]` segment lengths.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from siamstream.data.sequence import TrackingSequence
from siamstream.evaluation.one_pass import BoxTracker
from siamstream.evaluation.reset import ResetRun, expected_average_overlap, run_with_resets


def track_with_resets(tracker: BoxTracker, sequence: TrackingSequence) -> ResetRun:
    """Run `tracker` on `sequence` under the reset protocol, decoding each frame once, in order."""
    frames: Iterator[tuple[int, np.ndarray]] = enumerate(sequence.frames())

    def frame_at(index: int) -> np.ndarray:
        # The protocol asks for frames in increasing order; skipped frames are decoded and dropped.
        for number, frame in frames:
            if number == index:
                return frame
        raise IndexError(f"sequence {sequence.name!r} has no frame {index}")

    def step(index: int, start_box: np.ndarray | None) -> tuple[float, ...]:
        frame = frame_at(index)
        if start_box is not None:
            return tuple(tracker.init(frame, tuple(float(v) for v in start_box)).bbox)
        return tuple(tracker.track(frame).bbox)

    return run_with_resets(sequence.ground_truth, step, sequence.visible)


class ResetSequenceResult(BaseModel):
    """One sequence under the reset protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    frames: int
    failures: int = Field(description="Frames where the predicted box did not overlap the ground truth.")
    accuracy: float | None = Field(description="Mean IoU over the accuracy frames; None without any.")
    accuracy_frames: int = Field(description="Tracked frames outside the burn-in after each start.")
    attributes: list[str] = Field(default_factory=list)


class ResetReport(BaseModel):
    """Reset-protocol results of one tracker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker: str
    eao_range: tuple[int, int] = Field(description="Segment lengths [low, high] the EAO averages over.")
    eao: float | None = Field(description="Expected average overlap; None when no segment counts.")
    sequences: list[ResetSequenceResult]
    unscored: list[str] = Field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(row.failures for row in self.sequences)

    @property
    def accuracy(self) -> float | None:
        """Mean IoU over the accuracy frames of all sequences pooled (pysot's `nanmean` of them all)."""
        frames = sum(row.accuracy_frames for row in self.sequences)
        if not frames:
            return None
        return (
            # A row's accuracy is None exactly when it has no accuracy frames.
            sum(row.accuracy * row.accuracy_frames for row in self.sequences if row.accuracy is not None)
            / frames
        )

    def to_json(self) -> str:
        overall = {
            "sequences": len(self.sequences),
            "failures": self.failures,
            "accuracy": self.accuracy,
            "eao": self.eao,
            "eao_range": list(self.eao_range),
        }
        rows = [row.model_dump() for row in self.sequences]
        document = {"tracker": self.tracker, "overall": overall, "unscored": self.unscored, "sequences": rows}
        return json.dumps(document, indent=2)

    def to_text(self) -> str:
        # The column fits its header and the overall line even when every sequence went unscored.
        width = max(len(name) for name in ["Sequence", "Overall", *(row.name for row in self.sequences)])
        header = f"{'Sequence':<{width}}  Frames  Failures  Accuracy"
        rule = "-" * len(header)

        def accuracy(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}"

        lines = [f"Tracker: {self.tracker} (reset protocol)", header, rule]
        lines += [
            f"{row.name:<{width}}  {row.frames:>6}  {row.failures:>8}  {accuracy(row.accuracy):>8}"
            for row in self.sequences
        ]
        frames = sum(row.frames for row in self.sequences)
        lines += [
            rule,
            f"{'Overall':<{width}}  {frames:>6}  {self.failures:>8}  {accuracy(self.accuracy):>8}",
        ]
        low, high = self.eao_range
        lines += [f"EAO over segment lengths {low}..{high}: {accuracy(self.eao)}"]
        if self.unscored:
            lines += [f"Unscored (no ground truth after frame 0): {len(self.unscored)} sequences"]
        return "\n".join(lines)


def reset_report(
    tracker_name: str,
    runs: Iterable[tuple[TrackingSequence, ResetRun | None]],
    eao_range: tuple[int, int],
) -> ResetReport:
    """The report of `(sequence, run)` pairs; a run of None marks a sequence without ground truth to
    score after frame 0 (listed as unscored)."""
    rows, unscored, scored_runs = [], [], []
    for sequence, run in runs:
        if run is None:
            unscored.append(sequence.name)
            continue
        scored_runs.append(run)
        rows.append(
            ResetSequenceResult(
                name=sequence.name,
                frames=len(sequence),
                failures=len(run.failures),
                accuracy=None if math.isnan(run.accuracy) else run.accuracy,
                accuracy_frames=int(run.accuracy_frames.sum()),
                attributes=list(sequence.attributes),
            )
        )
    eao = expected_average_overlap(scored_runs, *eao_range) if scored_runs else float("nan")
    return ResetReport(
        tracker=tracker_name,
        eao_range=eao_range,
        eao=None if math.isnan(eao) else eao,
        sequences=rows,
        unscored=unscored,
    )
