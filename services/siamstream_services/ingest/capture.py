"""Reading one RTSP camera in a thread: bounded open and read, the latest frame only, reconnect with backoff.

OpenCV's FFmpeg backend blocks in `read()`, so each camera has one reader thread. It keeps only the newest
frame for the tracker (a tracker slower than the camera would otherwise fall further behind forever; the
frames it never took are counted as dropped) plus a short history for attaches that refer to an earlier
frame. A failed open or a lost stream releases the capture and opens a NEW one after the backoff delay:
a capture whose server went away never recovers.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from siamstream_services.cameras.health import (
    BackoffPolicy,
    CameraHealth,
    connecting,
    connection_failed,
    frame_received,
    stopped,
)
from siamstream_services.cameras.urls import (
    CameraNetworks,
    CameraUrlError,
    check_camera_address,
    ffmpeg_url,
    parse_camera_url,
    public_url,
)

log = logging.getLogger(__name__)

# Process-wide and read when FFmpeg opens a stream, so it must be set before the first capture. TCP
# interleaving because RTP over UDP binds 0.0.0.0 and breaks behind NAT; small probes cut the open from
# about 1 s to about 0.25 s (the stream parameters are in the SDP and the first keyframe).
FFMPEG_CAPTURE_OPTIONS = "rtsp_transport;tcp|analyzeduration;100000|probesize;32768"


class Capture(Protocol):
    """The part of `cv2.VideoCapture` the reader uses."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def release(self) -> None: ...


def open_rtsp_capture(
    url: str, open_timeout_ms: int, read_timeout_ms: int, *, networks: CameraNetworks
) -> Capture:
    """A capture of `url` through FFmpeg over TCP whose open and every read give up after the bounds.

    The URL is checked first, as the camera API checked it (its grammar, and its host's addresses against
    `networks`, resolving a name): a camera stored before URLs were checked, or whose name now resolves
    into a denied network, gets a capture that never opened, so the reader backs off and retries as it
    does for an unreachable camera, and FFmpeg never sees the URL. FFmpeg gets an rtsp:// URL with the
    address checked in place of a host name (`ffmpeg_url`), so it does not resolve the name again.

    Not checked: where an RTSP 3xx answer redirects FFmpeg. It follows the Location unconditionally, and
    none of its options turns that off (`rtsp_flags` has filter_src, listen, prefer_tcp, satip_raw), so
    the ingest pods' egress policy is what keeps a redirect off the networks denied here.
    """
    try:
        camera_url = parse_camera_url(url)
        checked = check_camera_address(camera_url, networks)
    except (CameraUrlError, OSError) as error:
        log.warning("camera url %r refused: %s", public_url(url), error)
        return cv2.VideoCapture()
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", FFMPEG_CAPTURE_OPTIONS)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        open_timeout_ms,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        read_timeout_ms,
    ]
    return cv2.VideoCapture(ffmpeg_url(camera_url, checked), cv2.CAP_FFMPEG, params)


@dataclass(frozen=True)
class CameraFrame:
    """One decoded frame: BGR uint8 `HxWx3`, its sequence number, and when it was received.

    `sequence` counts frames received by this reader from 1; `received_unix` is wall-clock seconds and
    `received_at` the monotonic clock's seconds.
    """

    sequence: int
    image: np.ndarray
    received_unix: float
    received_at: float


@dataclass(frozen=True)
class ReaderTimeouts:
    open_ms: int
    read_ms: int


class FrameReader:
    """One camera's reader thread. `start()` once, `stop()` once; everything else is thread-safe.

    `open_capture(url, open_timeout_ms, read_timeout_ms)` opens a connection (`open_rtsp_capture` with the
    deployment's camera networks). `on_frame` is called from the reader thread after each frame is stored
    (keep it short: it delays the next read). `monotonic`, `wall_clock` and `unit_random` are injectable
    for tests.
    """

    def __init__(
        self,
        url: str,
        timeouts: ReaderTimeouts,
        backoff: BackoffPolicy,
        history_frames: int,
        *,
        open_capture: Callable[[str, int, int], Capture],
        on_frame: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        unit_random: Callable[[], float] = random.random,
        name: str = "camera",
    ) -> None:
        self._url = url
        self._timeouts = timeouts
        self._backoff = backoff
        self._on_frame = on_frame
        self._open_capture = open_capture
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._unit_random = unit_random
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._health = CameraHealth(since=monotonic())
        self._latest: CameraFrame | None = None
        self._latest_taken = True
        self._history: collections.deque[CameraFrame] = collections.deque(maxlen=history_frames)
        self._dropped = 0
        self._sequence = 0
        self._thread = threading.Thread(target=self._run, name=f"rtsp-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> bool:
        """Ask the thread to stop and wait for it (at most one open or read bound); True when it ended."""
        self._stopping.set()
        self._thread.join(timeout=(self._timeouts.open_ms + self._timeouts.read_ms) / 1000 + 1.0)
        with self._lock:
            self._health = stopped(self._health, self._monotonic())
        return not self._thread.is_alive()

    @property
    def health(self) -> CameraHealth:
        with self._lock:
            return self._health

    @property
    def dropped_frames(self) -> int:
        """Frames replaced by a newer one before anybody took them."""
        with self._lock:
            return self._dropped

    def take_latest(self) -> CameraFrame | None:
        """The newest frame not taken yet, or None."""
        with self._lock:
            if self._latest_taken:
                return None
            self._latest_taken = True
            return self._latest

    def history(self) -> list[CameraFrame]:
        """The recent frames, oldest first."""
        with self._lock:
            return list(self._history)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                self._health = connecting(self._health, self._monotonic())
            capture = self._open_capture(self._url, self._timeouts.open_ms, self._timeouts.read_ms)
            try:
                if capture.isOpened():
                    self._read_until_lost(capture)
            finally:
                capture.release()
            if self._stopping.is_set():
                return
            with self._lock:
                self._health = connection_failed(
                    self._health, self._monotonic(), self._backoff, self._unit_random()
                )
                retry_at = self._health.retry_at
            log.info(
                "camera %s: connection lost or refused; retrying in %.2f s",
                self._thread.name,
                retry_at - self._monotonic(),
            )
            self._stopping.wait(max(0.0, retry_at - self._monotonic()))

    def _read_until_lost(self, capture: Capture) -> None:
        while not self._stopping.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                return
            now = self._monotonic()
            with self._lock:
                self._sequence += 1
                frame = CameraFrame(self._sequence, image, self._wall_clock(), now)
                if not self._latest_taken:
                    self._dropped += 1
                self._latest, self._latest_taken = frame, False
                self._history.append(frame)
                self._health = frame_received(self._health, now)
            if self._on_frame is not None:
                self._on_frame()
