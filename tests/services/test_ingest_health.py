"""Pure logic of camera ingestion on an injected clock: backoff, states, staleness, leases, anchors; the
reader, runner and worker on test doubles."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from siamstream.tracking.state import TrackResult, TrackStatus
from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import CameraSpec, TargetSpec
from siamstream_services.cameras.health import (
    BackoffPolicy,
    CameraHealth,
    CameraState,
    backoff_delay,
    connecting,
    connection_failed,
    frame_received,
    lease_expired,
    observed_state,
)
from siamstream_services.core.errors import ResourceExhausted
from siamstream_services.core.state import FrameOutcome
from siamstream_services.core.timings import StageTimings
from siamstream_services.ingest.capture import CameraFrame, FrameReader, ReaderTimeouts
from siamstream_services.ingest.metrics import IngestMetrics
from siamstream_services.ingest.runner import CameraRunner, anchor_frame
from siamstream_services.ingest.worker import IngestWorker
from siamstream_services.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from siamstream_services.cameras.directory import CameraDirectory
    from siamstream_services.core.sessions import SessionManager

POLICY = BackoffPolicy(initial_s=0.5, multiplier=2.0, max_s=4.0, jitter=0.5)


def test_backoff_grows_geometrically_caps_and_jitter_only_shortens() -> None:
    assert [backoff_delay(POLICY, n, 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_delay(POLICY, 3, 0.999) == pytest.approx(2.0 * (1 - 0.5 * 0.999))
    assert backoff_delay(POLICY, 50, 0.0) == 4.0
    with pytest.raises(ValueError, match="at least 1"):
        backoff_delay(POLICY, 0, 0.0)


def test_states_through_connect_stream_loss_and_reconnect() -> None:
    health = connecting(CameraHealth(), now=0.0)
    assert health.state is CameraState.CONNECTING and health.connections == 1 and health.reconnects == 0
    health = frame_received(health, now=0.3)
    assert health.state is CameraState.STREAMING and health.last_frame_at == 0.3
    health = connection_failed(health, now=5.0, policy=POLICY, unit_random=0.0)
    assert health.state is CameraState.RECONNECTING and health.retry_at == 5.5 and health.failures == 1
    health = connecting(health, now=5.5)
    assert health.state is CameraState.RECONNECTING and health.reconnects == 1
    health = connection_failed(health, now=6.0, policy=POLICY, unit_random=0.0)
    assert health.retry_at == 7.0  # the second consecutive failure waits twice as long
    health = frame_received(connecting(health, now=7.0), now=7.2)
    assert health.state is CameraState.STREAMING and health.failures == 0 and health.reconnects == 2


def test_streaming_camera_without_frames_is_stale_after_the_bound() -> None:
    health = frame_received(connecting(CameraHealth(), 0.0), now=10.0)
    assert observed_state(health, now=11.9, stale_after_s=2.0) is CameraState.STREAMING
    assert observed_state(health, now=12.1, stale_after_s=2.0) is CameraState.STALE
    lost = connection_failed(health, now=13.0, policy=POLICY, unit_random=0.0)
    assert observed_state(lost, now=20.0, stale_after_s=2.0) is CameraState.RECONNECTING


def test_lease_counts_as_expired_a_margin_before_its_ttl() -> None:
    assert not lease_expired(renewed_at=10.0, now=11.0, ttl_s=1.5, margin_s=0.1)
    assert lease_expired(renewed_at=10.0, now=11.45, ttl_s=1.5, margin_s=0.1)
    assert lease_expired(renewed_at=None, now=0.0, ttl_s=1.5, margin_s=0.1)


def _frame(sequence: int, received_unix: float) -> CameraFrame:
    return CameraFrame(sequence, np.zeros((2, 2, 3), np.uint8), received_unix, received_unix)


def _target(anchor_unix: float, nearest: bool) -> TargetSpec:
    return TargetSpec(target_id="t", tracker="x", box=(1, 1, 1, 1), anchor_unix=anchor_unix, nearest=nearest)


def _anchor_sequence(history: list[CameraFrame], target: TargetSpec) -> int | None:
    frame = anchor_frame(history, target)
    return None if frame is None else frame.sequence


def test_anchor_is_first_frame_after_attach_or_nearest_to_box_time() -> None:
    history = [_frame(1, 100.00), _frame(2, 100.04), _frame(3, 100.08)]
    assert _anchor_sequence(history, _target(100.03, nearest=False)) == 2
    assert anchor_frame(history, _target(100.09, nearest=False)) is None  # not received yet
    assert _anchor_sequence(history, _target(100.07, nearest=True)) == 3
    assert _anchor_sequence(history, _target(50.0, nearest=True)) == 1
    assert anchor_frame([], _target(50.0, nearest=True)) is None


class ScriptedCapture:
    """A capture that yields `frames` frames, then fails (a lost stream); `opened` False refuses to open."""

    def __init__(self, frames: int, opened: bool = True, gate: threading.Event | None = None) -> None:
        self.frames, self.opened, self.gate, self.released = frames, opened, gate, False

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.gate is not None:
            self.gate.wait(2.0)
        if self.frames == 0:
            return False, None
        self.frames -= 1
        return True, np.full((2, 2, 3), self.frames, np.uint8)

    def release(self) -> None:
        self.released = True


def test_reader_keeps_the_latest_frame_counts_drops_and_reopens_a_new_capture() -> None:
    captures = [ScriptedCapture(5), ScriptedCapture(0, opened=False), ScriptedCapture(3)]
    opened: list[ScriptedCapture] = []
    done = threading.Event()

    def open_capture(url: str, open_ms: int, read_ms: int) -> ScriptedCapture:
        capture = captures.pop(0) if captures else ScriptedCapture(0, opened=False)
        opened.append(capture)
        if not captures:
            done.set()
        return capture

    clock = iter(float(t) for t in range(10_000))
    reader = FrameReader(
        "rtsp://camera",
        ReaderTimeouts(open_ms=100, read_ms=100),
        BackoffPolicy(initial_s=0.001, multiplier=1.0, max_s=0.001, jitter=0.0),
        history_frames=4,
        open_capture=open_capture,
        monotonic=lambda: next(clock),
        unit_random=lambda: 0.0,
    )
    reader.start()
    assert done.wait(5.0)
    assert reader.stop()

    assert len(opened) >= 3 and all(capture.released for capture in opened)
    latest = reader.take_latest()
    assert latest is not None and latest.sequence == 8  # 5 + 3 frames, only the newest kept
    assert reader.take_latest() is None  # taken once
    assert reader.dropped_frames == 7  # every frame but the one taken was replaced untaken
    assert [frame.sequence for frame in reader.history()] == [5, 6, 7, 8]
    assert reader.health.reconnects == len(opened) - 1
    assert reader.health.state is CameraState.STOPPED


class PacedCapture(ScriptedCapture):
    """A camera at about 100 frames per second."""

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.01)
        return super().read()


class FlakyDirectory:
    """A camera directory whose first publish fails like a Redis blip; records the frames published."""

    def __init__(self) -> None:
        self.settings = IngestSettings()
        self.published: list[int] = []
        self.failed = False

    async def set_session(self, camera_id: str, target_id: str, session_id: str) -> None:
        return None

    async def report_status(self, camera_id: str, status: object) -> None:
        return None

    async def publish(self, camera_id: str, target_id: str, payload: bytes, box: object) -> None:
        if not self.failed:
            self.failed = True
            raise RedisError("Connection reset by peer")
        self.published.append(pb.CameraTrackResult.FromString(payload).result.frame_index)


class CountingManager:
    """Sessions that answer every frame with its index, without tracking."""

    def __init__(self) -> None:
        self.frames = 0

    def _outcome(self) -> FrameOutcome:
        result = TrackResult(
            frame_index=self.frames, bbox=(1, 1, 1, 1), score=None, status=TrackStatus.TRACKING
        )
        self.frames += 1
        return FrameOutcome("session-1", result, None, StageTimings())

    async def start(self, *args: object) -> FrameOutcome:
        return self._outcome()

    async def push(self, *args: object) -> FrameOutcome:
        return self._outcome()


async def test_runner_keeps_tracking_after_a_failed_frame_and_stop_releases_the_reader() -> None:
    directory, metrics = FlakyDirectory(), IngestMetrics(CollectorRegistry())
    spec = CameraSpec("cam", "rtsp://camera", "owner", {"t": _target(0.0, nearest=False)})

    captures: list[ScriptedCapture] = []

    def paced_capture(url: str, open_ms: int, read_ms: int) -> ScriptedCapture:
        capture = PacedCapture(200)
        captures.append(capture)
        return capture

    # The test doubles answer the calls the runner makes (duck-typed, not subclasses).
    manager, camera_directory = cast("SessionManager", CountingManager()), cast("CameraDirectory", directory)
    runner = CameraRunner(spec, {}, manager, camera_directory, metrics, "w1", open_capture=paced_capture)
    runner.start()
    try:
        async with asyncio.timeout(5.0):
            while len(directory.published) < 3:
                await asyncio.sleep(0.01)
    finally:
        await runner.stop()
    assert directory.failed and directory.published[0] > 0  # the frame whose publish failed was skipped
    assert directory.published == sorted(directory.published)
    assert runner.reader.health.state is CameraState.STOPPED and captures[0].released
    assert metrics.registry.get_sample_value("siamstream_camera_frames_total", {"camera": "cam"}) is None


class OwnerAtLimitManager:
    """The sessions of an owner at its session limit: every start is refused."""

    def __init__(self) -> None:
        self.starts = 0

    async def start(self, *args: object) -> FrameOutcome:
        self.starts += 1
        raise ResourceExhausted("this API key has 1 live sessions, the most allowed")

    async def push(self, *args: object) -> FrameOutcome:
        raise AssertionError("no session was started")


async def test_a_start_refused_as_resource_exhausted_is_retried_after_a_backoff_not_every_frame() -> None:
    directory, metrics = FlakyDirectory(), IngestMetrics(CollectorRegistry())
    directory.settings = IngestSettings(
        backoff_initial_s=1.0, backoff_multiplier=2.0, backoff_max_s=4.0, backoff_jitter=0.0
    )
    spec = CameraSpec("cam", "rtsp://camera", "owner", {"t": _target(0.0, nearest=False)})
    manager = OwnerAtLimitManager()
    now = [0.0]
    runner = CameraRunner(
        spec,
        {},
        cast("SessionManager", manager),  # test doubles answering the calls the runner makes
        cast("CameraDirectory", directory),
        metrics,
        "w1",
        monotonic=lambda: now[0],
        open_capture=lambda url, open_ms, read_ms: PacedCapture(200),
    )

    def frames() -> float:
        return metrics.registry.get_sample_value("siamstream_camera_frames_total", {"camera": "cam"}) or 0

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(5.0):
            while not condition():
                await asyncio.sleep(0.005)

    runner.start()
    try:
        await until(lambda: frames() >= 5)
        assert manager.starts == 1  # refused on the first frame, then left alone for a second
        now[0] += 1.0
        await until(lambda: manager.starts == 2)
        seen = frames()
        now[0] += 1.0  # half way through the second refusal's two seconds
        await until(lambda: frames() >= seen + 5)
        assert manager.starts == 2
        now[0] += 1.0
        await until(lambda: manager.starts == 3)
    finally:
        await runner.stop()


class ScriptlessClient:
    """The client the worker's leases register their scripts on; never called here."""

    def register_script(self, script: str) -> None:
        return None


class CancelSwallowingDirectory(FlakyDirectory):
    """A directory whose Redis calls answer a cancellation with a RedisError, as redis-py's cancelled
    command can once it disconnects; its calls are slow enough to be cancelled in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.client = ScriptlessClient()
        self.reports = 0

    async def _slow_call(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            raise RedisError("Connection closed by server.") from None

    async def report_status(self, camera_id: str, status: object) -> None:
        self.reports += 1
        await self._slow_call(0.05 if self.reports < 3 else 10.0)  # the third report hangs till cancelled

    async def camera_keys(self) -> list[str]:
        await self._slow_call(10.0)
        return []

    async def scope_unscoped(self, keys: list[str]) -> list[str]:
        return keys


async def test_runner_and_worker_stop_when_a_library_turns_their_cancellation_into_its_own_error() -> None:
    directory, metrics = CancelSwallowingDirectory(), IngestMetrics(CollectorRegistry())
    spec = CameraSpec("cam", "rtsp://camera", "owner", {"t": _target(0.0, nearest=False)})
    runner = CameraRunner(
        spec,
        {},
        cast("SessionManager", CountingManager()),  # test doubles answering the calls the runner makes
        cast("CameraDirectory", directory),
        metrics,
        "w1",
        open_capture=lambda url, open_ms, read_ms: PacedCapture(200),
    )
    runner.start()
    async with asyncio.timeout(5.0):
        while directory.reports < 3:  # the watchdog reports every 0.25 s (stale_after_s / 4)
            await asyncio.sleep(0.01)
    async with asyncio.timeout(3.0):  # the watchdog, cancelled inside its third report, would loop on
        await runner.stop()
    assert runner.reader.health.state is CameraState.STOPPED

    worker = IngestWorker(
        cast("CameraDirectory", directory), cast("SessionManager", CountingManager()), metrics, worker_id="w"
    )
    task = asyncio.get_running_loop().create_task(worker.run())
    await asyncio.sleep(0.1)  # inside its first listing of the cameras
    task.cancel()
    async with asyncio.timeout(3.0):  # the worker tolerates Redis errors: without the check it carries on
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
