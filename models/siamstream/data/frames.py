"""Frames from a video file or a folder of images, as BGR uint8 `HxWx3` arrays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})


class FrameSourceError(ValueError):
    """A frame source (video, image folder, image file) cannot be opened or decoded."""


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name (benchmarks zero-pad frame numbers, so name order is
    frame order). Raises `FrameSourceError` when the folder is missing or holds no image."""
    if not folder.is_dir():
        raise FrameSourceError(f"{folder}: not a folder of images")
    images = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FrameSourceError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def read_frame(path: Path) -> np.ndarray:
    """One image file as a BGR uint8 `HxWx3` frame; raises `FrameSourceError` when it cannot be decoded."""
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise FrameSourceError(f"{path}: cannot read or decode image")
    return frame


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise FrameSourceError(f"{path}: cannot open video")
        ok, frame = capture.read()
        if not ok:
            raise FrameSourceError(f"{path}: video has no decodable frame")
        while ok:
            yield frame
            ok, frame = capture.read()
    finally:
        capture.release()


def iter_frames(source: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of `source` in order, each BGR uint8 `HxWx3`.

    `source` is a folder of images (read in name order) or a video file that OpenCV can decode. Raises
    `FrameSourceError` when the source is missing, unreadable or empty; for a folder, the check for
    images happens before the first frame is yielded.
    """
    path = Path(source)
    if path.is_dir():
        images = list_images(path)
        return (read_frame(image) for image in images)
    if not path.is_file():
        raise FrameSourceError(f"{path}: no such video file or image folder")
    return _video_frames(path)
