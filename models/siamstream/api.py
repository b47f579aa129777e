"""The Python API: a tracker package in a few lines, in the manner of OpenCV's trackers.

    tracker = Tracker.from_package("models/packages/demo", device="cpu")
    tracker.init(frame, (x, y, w, h))
    result = tracker.update(next_frame)   # result.box, result.score, result.status

`MultiTracker` follows several targets through the same frames with one batched search call per frame.
Frames are BGR uint8 HxWx3 (OpenCV's layout); boxes are xywh in image pixels. The boxes are those of
`siamstream track` and of the service for the same frames (the same step functions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamstream.config import TrackerConfig
from siamstream.package import read_package
from siamstream.runner import PackageRunner
from siamstream.tracking.multi_target import MultiTargetTracker
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.stage_runner import StageRunner
from siamstream.tracking.state import TrackResult, TrackStatus


@dataclass(frozen=True)
class FrameResult:
    """A target's answer for one frame."""

    box: tuple[float, float, float, float]
    """Target box xywh in image pixels."""
    score: float | None
    """Confidence in [0, 1]; None on the init frame."""
    status: TrackStatus
    """TRACKING, UNCERTAIN or LOST, by the tracker's status thresholds (as the service reports it)."""
    frame_index: int
    """Frames since init (0 = the init frame)."""


def _frame_result(result: TrackResult) -> FrameResult:
    return FrameResult(
        box=result.bbox, score=result.score, status=result.status, frame_index=result.frame_index
    )


def _package_stages(package: str | Path, device: str) -> tuple[TrackerConfig, PackageRunner]:
    opened = read_package(package)
    return opened.config, PackageRunner(opened, device)


class Tracker:
    """One target through a video."""

    def __init__(self, config: TrackerConfig, runner: StageRunner) -> None:
        self._tracker = OfflineTracker(config, runner)

    @classmethod
    def from_package(cls, package: str | Path, device: str = "cpu") -> Tracker:
        """The tracker of a package directory, its stages on the torch `device` ("cpu", "cuda")."""
        return cls(*_package_stages(package, device))

    @property
    def config(self) -> TrackerConfig:
        return self._tracker.config

    def init(self, frame: np.ndarray, box: Sequence[float]) -> FrameResult:
        """Start on `frame` at `box` (xywh, image px); the result echoes the box with no score."""
        return _frame_result(self._tracker.init(frame, box))

    def update(self, frame: np.ndarray) -> FrameResult:
        """Locate the target in the next frame."""
        return _frame_result(self._tracker.track(frame))


class MultiTracker:
    """Several targets through the same video; per frame one search call for all of them. Each target's
    results are those of a `Tracker` following it alone (to float rounding)."""

    def __init__(self, config: TrackerConfig, runner: StageRunner) -> None:
        self._tracker = MultiTargetTracker(config, runner)

    @classmethod
    def from_package(cls, package: str | Path, device: str = "cpu") -> MultiTracker:
        """The tracker of a package directory, its stages on the torch `device` ("cpu", "cuda")."""
        return cls(*_package_stages(package, device))

    @property
    def config(self) -> TrackerConfig:
        return self._tracker.config

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[FrameResult]:
        """Start one target per box (xywh, image px) on `frame`; results in the order of `boxes`."""
        return [_frame_result(result) for result in self._tracker.init(frame, boxes)]

    def update(self, frame: np.ndarray) -> list[FrameResult]:
        """Locate every target in the next frame; results in the order of the init boxes."""
        return [_frame_result(result) for result in self._tracker.track(frame)]
