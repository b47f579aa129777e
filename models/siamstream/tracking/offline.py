"""A tracker for whole sequences (CLI, evaluation): the one-target use of the multi-target per-frame plan
(`multi_target.start_targets`, `multi_target.track_targets`) over the network stages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from siamstream.config import TrackerConfig
from siamstream.tracking.multi_target import start_targets, track_targets
from siamstream.tracking.stage_runner import StageRunner
from siamstream.tracking.state import TrackerState, TrackResult


class OfflineTracker:
    """Tracks one target through frames in this process; same boxes as the service for the same frames."""

    def __init__(self, config: TrackerConfig, runner: StageRunner) -> None:
        self.config = config
        self.runner = runner
        self._state: TrackerState | None = None
        self._embedding: np.ndarray | None = None

    @property
    def state(self) -> TrackerState | None:
        """The current tracker state (None before `init`)."""
        return self._state

    def init(self, frame: np.ndarray, box_xywh: Sequence[float]) -> TrackResult:
        """Start on `frame` at `box_xywh` (image px); the result echoes the box with no score."""
        (self._state,), (self._embedding,), (result,) = start_targets(
            self.config, self.runner, frame, [box_xywh]
        )
        return result

    def track(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in the next frame."""
        if self._state is None or self._embedding is None:
            raise RuntimeError("track() called before init()")
        (self._state,), (self._embedding,), (result,) = track_targets(
            self.config, self.runner, frame, [self._state], [self._embedding]
        )
        return result

    def track_sequence(self, frames: Iterable[np.ndarray], init_box: Sequence[float]) -> list[TrackResult]:
        """Init on the first frame at `init_box`, track through the rest; one result per frame."""
        results: list[TrackResult] = []
        for frame in frames:
            results.append(self.init(frame, init_box) if not results else self.track(frame))
        return results
