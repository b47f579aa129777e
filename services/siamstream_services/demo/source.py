"""What the demo tracks: a generated synthetic sequence (with ground truth) or a video given by the user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamstream.data.frames import iter_frames
from siamstream.data.synthetic import SequenceSpec, generate_sequence


@dataclass(frozen=True)
class DemoSource:
    """Frames to stream (BGR uint8, rendered or read lazily), the initial box and what to score against.

    `ground_truth` is `(N, 4)` xywh image pixels for generated sequences, None for a user's video.
    """

    frames: Iterator[np.ndarray]
    init_box: tuple[float, float, float, float]
    ground_truth: np.ndarray | None
    description: dict


def synthetic_source(frame_count: int, seed: int = 0) -> DemoSource:
    """A generated 640x480 sequence of `frame_count` frames: a textured target drifting over texture."""
    spec = SequenceSpec(name="demo", length=frame_count, seed=seed)
    sequence = generate_sequence(spec)
    x, y, w, h = (float(value) for value in sequence.init_box)
    return DemoSource(
        frames=sequence.frames(),
        init_box=(x, y, w, h),
        ground_truth=sequence.ground_truth,
        description={"kind": "synthetic", "spec": spec.model_dump(mode="json")},
    )


def video_source(video: Path, box: tuple[float, float, float, float], frame_count: int | None) -> DemoSource:
    """The frames of a video file or frame folder (the first `frame_count` when given), no ground truth."""
    frames = iter_frames(video)
    if frame_count is not None:
        frames = (frame for _, frame in zip(range(frame_count), frames, strict=False))
    return DemoSource(frames, box, None, {"kind": "video", "path": str(video)})
