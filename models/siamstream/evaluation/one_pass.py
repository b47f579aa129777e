"""The one-pass tracking loop: start a tracker on the first frame's box and track every later frame."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np


class BoxResult(Protocol):
    @property
    def bbox(self) -> Sequence[float]: ...


class BoxTracker(Protocol):
    """What the loop needs of a tracker (`siamstream.tracking.offline.OfflineTracker` is one)."""

    def init(self, frame: np.ndarray, box: tuple[float, ...]) -> BoxResult: ...

    def track(self, frame: np.ndarray) -> BoxResult: ...


def track_boxes(
    tracker: BoxTracker,
    frames: Iterable[np.ndarray],
    init_box: np.ndarray,
    frame_seconds: list[float] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> np.ndarray:
    """Predicted boxes, float64 `(N, 4)` xywh image pixels, one per frame; row 0 is what `init` returns
    for `init_box` (xywh) on the first frame.

    When `frame_seconds` is given, the seconds each frame took (the init on frame 0, a tracking step on
    the others; decoding the frame excluded) are appended to it, measured with `clock`.
    """
    boxes = []
    start_box = tuple(float(value) for value in init_box)
    for index, frame in enumerate(frames):
        start = clock()
        result = tracker.init(frame, start_box) if index == 0 else tracker.track(frame)
        if frame_seconds is not None:
            frame_seconds.append(clock() - start)
        boxes.append(result.bbox)
    return np.array(boxes, dtype=np.float64)
