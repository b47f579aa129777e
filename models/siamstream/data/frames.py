"""Frames from a video file, a folder of images, a camera or an RTSP stream, as BGR uint8 `HxWx3` arrays."""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from siamstream.urls import without_credentials

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
STREAM_SCHEMES = ("rtsp://", "rtsps://")
# A stream that does not answer within these bounds counts as unreachable (open) or ended (read), so a
# command reading it always ends.
STREAM_OPEN_TIMEOUT_MS = 10_000
STREAM_READ_TIMEOUT_MS = 5_000
# Process-wide and read when FFmpeg opens a stream. TCP interleaving, as the service's ingest: RTP over
# UDP loses packets under load (smeared frames) and is blocked by most NATs.
FFMPEG_STREAM_OPTIONS = "rtsp_transport;tcp"
# A declared rate above any camera's is a stream time base misread as a rate.
MAX_DECLARED_FPS = 240.0


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
    with CaptureSource(cv2.VideoCapture(str(path)), str(path), "video", live=False) as video:
        frames = video.frames()
        first = next(frames, None)
        if first is None:
            raise FrameSourceError(f"{path}: video has no decodable frame")
        yield first
        yield from frames


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


class FrameSource(ABC):
    """An opened frame source, read with `frames`, closed with `close` (or as a context manager).

    `name` is how results and errors refer to it (a stream's URL without its credentials); `fps` the
    frame rate it declares (None when it declares none: image folders, some cameras); `live` whether it
    is a camera or stream, which has no end of its own.
    """

    name: str
    fps: float | None
    live: bool

    @abstractmethod
    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """The frames from index `start` on (the earlier ones are skipped), until the source ends."""

    @abstractmethod
    def close(self) -> None:
        """Release the source; `frames` must not be read afterwards."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class ImageFolderSource(FrameSource):
    """The images of a folder in name order (`list_images`); skipped images are never decoded."""

    def __init__(self, folder: Path) -> None:
        self.images = list_images(folder)
        self.name = str(folder)
        self.fps = None
        self.live = False

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        return (read_frame(image) for image in self.images[start:])

    def close(self) -> None:
        """Nothing to release: each image is read and closed by `read_frame`."""


class CaptureSource(FrameSource):
    """An OpenCV capture (video file, camera, stream); raises `FrameSourceError` when it did not open."""

    def __init__(self, capture: cv2.VideoCapture, name: str, kind: str, live: bool) -> None:
        if not capture.isOpened():
            capture.release()
            raise FrameSourceError(f"{name}: cannot open {kind}")
        self._capture = capture
        self.name = name
        self.live = live
        declared = capture.get(cv2.CAP_PROP_FPS)
        self.fps = declared if math.isfinite(declared) and 0 < declared <= MAX_DECLARED_FPS else None

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        for _ in range(start):
            if not self._capture.grab():  # demuxes without converting the picture
                return
        while True:
            ok, frame = self._capture.read()
            if not ok:  # end of file, or a stream that stopped answering within its read timeout
                return
            yield frame

    def close(self) -> None:
        self._capture.release()


def open_source(spec: str) -> FrameSource:
    """Open `spec`: a camera index (`0`), an `rtsp://` or `rtsps://` URL, a video file or a folder of
    images. Raises `FrameSourceError` when it does not exist or cannot be opened; a stream gets
    `STREAM_OPEN_TIMEOUT_MS` to open and `STREAM_READ_TIMEOUT_MS` per frame."""
    if spec.isdigit():
        name = f"camera {spec}"
        return CaptureSource(cv2.VideoCapture(int(spec)), name, "camera (no such device, or busy)", live=True)
    if spec.lower().startswith(STREAM_SCHEMES):
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", FFMPEG_STREAM_OPTIONS)
        bounds = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            STREAM_OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            STREAM_READ_TIMEOUT_MS,
        ]
        capture = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, bounds)
        return CaptureSource(
            capture, without_credentials(spec), "stream (unreachable, refused or not a stream)", live=True
        )
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if not path.is_file():
        raise FrameSourceError(
            f"{spec}: no such video file or image folder (nor a camera index or rtsp:// URL)"
        )
    return CaptureSource(cv2.VideoCapture(spec), spec, "video", live=False)
