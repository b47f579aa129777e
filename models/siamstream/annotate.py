"""Annotated videos: the tracked box, score and status drawn on each frame."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from siamstream.tracking.state import TrackResult, TrackStatus

_STATUS_COLOURS = {  # BGR
    TrackStatus.TRACKING: (0, 200, 0),
    TrackStatus.UNCERTAIN: (0, 200, 255),
    TrackStatus.LOST: (0, 0, 255),
}


def draw_result(frame: np.ndarray, result: TrackResult) -> np.ndarray:
    """A copy of `frame` (BGR uint8) with the box (xywh, image px), frame index, score and status."""
    canvas = frame.copy()
    x, y, w, h = result.bbox
    colour = _STATUS_COLOURS[result.status]
    cv2.rectangle(canvas, (round(x), round(y)), (round(x + w), round(y + h)), colour, 2)
    score = "init" if result.score is None else f"{result.score:.2f}"
    label = f"#{result.frame_index} {score} {result.status.value}"
    cv2.putText(canvas, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    return canvas


def draw_targets(frame: np.ndarray, results: Sequence[TrackResult], frame_index: int) -> np.ndarray:
    """A copy of `frame` (BGR uint8) with `frame_index` (the frame's index in its source, which differs
    from the results' count since the tracker started when tracking starts later in the source), and each
    target's box (xywh, image px) labelled with its number (its position in `results`), score and status."""
    canvas = frame.copy()
    cv2.putText(canvas, f"#{frame_index}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    for target, result in enumerate(results):
        x, y, w, h = result.bbox
        colour = _STATUS_COLOURS[result.status]
        cv2.rectangle(canvas, (round(x), round(y)), (round(x + w), round(y + h)), colour, 2)
        score = "init" if result.score is None else f"{result.score:.2f}"
        label = f"{target} {score} {result.status.value}"
        # Above the box, or inside its top edge when the box touches the top of the frame.
        origin = (round(x), max(round(y) - 6, 14))
        cv2.putText(canvas, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return canvas


# Frame rate of an annotated video whose source declares none (image folders, some cameras).
DEFAULT_FPS = 30.0


class AnnotatedVideoWriter:
    """Writes annotated frames to an .mp4 (mp4v: the codec the PyPI OpenCV wheel can write)."""

    def __init__(self, path: Path, fps: float = DEFAULT_FPS) -> None:
        self.path = path
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray, result: TrackResult) -> None:
        self._write(draw_result(frame, result))

    def write_targets(self, frame: np.ndarray, results: Sequence[TrackResult], frame_index: int) -> None:
        """Source frame number `frame_index` with several targets' results (`draw_targets`)."""
        self._write(draw_targets(frame, results, frame_index))

    def _write(self, canvas: np.ndarray) -> None:
        if self._writer is None:
            height, width = canvas.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise OSError(f"cannot open {self.path} for writing an mp4v video")
        self._writer.write(canvas)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
