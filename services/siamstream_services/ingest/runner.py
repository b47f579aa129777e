"""One camera on one worker: its reader thread, its targets' sessions, its watchdog.

Every frame goes through `SessionManager.push`, the very path of PushFrame, once per target; the targets
of a camera share the camera's one reader. A target's session starts on the frame its box refers to (see
`anchor_frame`), then catches up through the recent frames after it, then follows the newest frames.
Results go to the camera's Redis stream as `CameraTrackResult` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import Box, CameraDirectory, CameraSpec, CameraStatus, TargetSpec
from siamstream_services.cameras.health import BackoffPolicy, CameraState, backoff_delay, observed_state
from siamstream_services.cancellation import stop_if_cancelled
from siamstream_services.convert import result_message
from siamstream_services.core.errors import InvalidArgument, NotFound, ResourceExhausted, ServiceError
from siamstream_services.core.frames import PixelFormat, RawImage
from siamstream_services.core.options import TrackOptions
from siamstream_services.core.sessions import FrameInput, SessionManager
from siamstream_services.core.state import FrameOutcome
from siamstream_services.v1 import tracking_pb2 as pb

from .capture import CameraFrame, Capture, FrameReader, ReaderTimeouts, open_rtsp_capture
from .metrics import IngestMetrics

log = logging.getLogger(__name__)


def anchor_frame(history: Sequence[CameraFrame], target: TargetSpec) -> CameraFrame | None:
    """The frame `target`'s box is on, among `history` (oldest first); None while it has not arrived.

    Nearest mode: the frame received nearest `anchor_unix`. Otherwise: the first frame received at or
    after `anchor_unix`.
    """
    if not history:
        return None
    if target.nearest:
        return min(history, key=lambda frame: abs(frame.received_unix - target.anchor_unix))
    return next((frame for frame in history if frame.received_unix >= target.anchor_unix), None)


def frame_input(frame: CameraFrame) -> FrameInput:
    """The camera frame as a raw BGR frame of the session API."""
    height, width = frame.image.shape[:2]
    return FrameInput(RawImage(frame.image.tobytes(), width, height, PixelFormat.BGR8))


def backoff_policy(settings: IngestSettings) -> BackoffPolicy:
    return BackoffPolicy(
        settings.backoff_initial_s,
        settings.backoff_multiplier,
        settings.backoff_max_s,
        settings.backoff_jitter,
    )


class CameraRunner:
    """Reads one camera and tracks its targets until `stop()`; `update()` brings in attaches and detaches."""

    def __init__(
        self,
        spec: CameraSpec,
        sessions: dict[str, str],
        manager: SessionManager,
        directory: CameraDirectory,
        metrics: IngestMetrics,
        worker_id: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        open_capture: Callable[[str, int, int], Capture] | None = None,
    ) -> None:
        settings = directory.settings
        networks = settings.camera_networks
        self.camera_key = spec.key
        self._camera_id = spec.camera_id
        self._owner = spec.owner
        self._targets = dict(spec.targets)
        self._sessions = {tid: sid for tid, sid in sessions.items() if tid in self._targets}
        self._manager = manager
        self._directory = directory
        self._metrics = metrics
        self._worker_id = worker_id
        self._settings = settings
        self._monotonic = monotonic
        self._frame_ready = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._reader = FrameReader(
            spec.url,
            ReaderTimeouts(settings.open_timeout_ms, settings.read_timeout_ms),
            backoff_policy(settings),
            settings.history_frames,
            on_frame=self._signal_frame,
            open_capture=open_capture or functools.partial(open_rtsp_capture, networks=networks),
            monotonic=monotonic,
            name=spec.key,
        )
        self._tasks: list[asyncio.Task[None]] = []
        # Target id -> (consecutive RESOURCE_EXHAUSTED refusals, monotonic time of the next try).
        self._refused: dict[str, tuple[int, float]] = {}

    def start(self) -> None:
        self._reader.start()
        self._tasks = [
            self._loop.create_task(self._track_loop(), name=f"track-{self.camera_key}"),
            self._loop.create_task(self._watchdog_loop(), name=f"watchdog-{self.camera_key}"),
        ]

    async def stop(self) -> None:
        """Stop tracking and reading; the sessions stay in the store for whoever takes the camera over."""
        for task in self._tasks:
            task.cancel()
        try:
            outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
            for task, outcome in zip(self._tasks, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    log.error("camera %s: %s had failed", self.camera_key, task.get_name(), exc_info=outcome)
        finally:
            await asyncio.to_thread(self._reader.stop)
            self._metrics.forget(self.camera_key)

    def update(self, spec: CameraSpec, sessions: dict[str, str]) -> None:
        """Adopt the camera's current targets; a detached target is dropped before its next frame."""
        self._targets = dict(spec.targets)
        for target_id, session_id in sessions.items():
            if target_id in self._targets:
                self._sessions.setdefault(target_id, session_id)
        for target_id in list(self._sessions):
            if target_id not in self._targets:
                del self._sessions[target_id]
        self._refused = {tid: refused for tid, refused in self._refused.items() if tid in self._targets}

    @property
    def reader(self) -> FrameReader:
        return self._reader

    def observed_state(self) -> CameraState:
        return observed_state(self._reader.health, self._monotonic(), self._settings.stale_after_s)

    def _signal_frame(self) -> None:  # reader thread
        self._loop.call_soon_threadsafe(self._frame_ready.set)

    async def _track_loop(self) -> None:
        # No cancellation check needed here: Event.wait raises it, and gather raises it even when a
        # target's frame swallowed it (the gathered future remembers the request).
        while True:
            await self._frame_ready.wait()
            self._frame_ready.clear()
            frame = self._reader.take_latest()
            if frame is None:
                continue
            await asyncio.gather(*(self._track_target(tid, frame) for tid in list(self._targets)))
            self._metrics.frames.labels(self.camera_key).inc()

    async def _track_target(self, target_id: str, frame: CameraFrame) -> None:
        target = self._targets.get(target_id)
        if target is None:
            return
        refusals, retry_at = self._refused.get(target_id, (0, 0.0))
        if self._monotonic() < retry_at:
            return
        try:
            session_id = self._sessions.get(target_id)
            if session_id is None:
                await self._start_target(target, frame)
                return
            try:
                outcome = await self._manager.push(self._owner, session_id, frame_input(frame))
            except (NotFound, InvalidArgument) as error:
                # The session expired (a long outage) or the camera changed resolution: start again on
                # this frame from the last box published, by this worker or the one it took over from.
                box = await self._directory.last_box(self.camera_key, target_id)
                if box is None:
                    raise
                log.warning("camera %s target %s: %s; restarting it", self.camera_key, target_id, error)
                await self._start_session(target, frame, box)
                return
            await self._publish(target_id, frame, outcome)
        except ResourceExhausted as error:
            # The owner is at its session limit (or the frames are over the size limit): asking again on
            # every frame cannot succeed sooner and costs the service a call per frame. Back off as the
            # reader does between reconnects; a start that succeeds ends it.
            delay = backoff_delay(backoff_policy(self._settings), refusals + 1, random.random())
            self._refused[target_id] = (refusals + 1, self._monotonic() + delay)
            log.warning(
                "camera %s target %s: frame %d refused, next try in %.1f s: %s",
                self.camera_key,
                target_id,
                frame.sequence,
                delay,
                error.message,
            )
        except ServiceError as error:
            log.warning(
                "camera %s target %s: frame %d refused: %s",
                self.camera_key,
                target_id,
                frame.sequence,
                error.message,
            )
        except Exception:
            # Redis down for a moment, a model error: this frame is lost, the next one is tried (the loop
            # is paced by the camera's frames). Escaping would end the camera's tracking silently.
            log.exception("camera %s target %s: frame %d failed", self.camera_key, target_id, frame.sequence)

    async def _start_target(self, target: TargetSpec, newest: CameraFrame) -> None:
        history = self._reader.history()
        anchor = anchor_frame(history, target)
        if anchor is None:
            return
        await self._start_session(target, anchor, target.box)
        # Catch up through the frames between the anchor and the newest one, in order.
        session_id = self._sessions[target.target_id]
        for frame in history:
            if anchor.sequence < frame.sequence <= newest.sequence:
                outcome = await self._manager.push(self._owner, session_id, frame_input(frame))
                await self._publish(target.target_id, frame, outcome)

    async def _start_session(self, target: TargetSpec, frame: CameraFrame, box: Box) -> None:
        options = TrackOptions.model_validate_json(target.options_json)
        outcome = await self._manager.start(self._owner, target.tracker, frame_input(frame), box, options)
        self._refused.pop(target.target_id, None)
        self._sessions[target.target_id] = outcome.session_id
        await self._directory.set_session(self.camera_key, target.target_id, outcome.session_id)
        await self._publish(target.target_id, frame, outcome)

    async def _publish(self, target_id: str, frame: CameraFrame, outcome: FrameOutcome) -> None:
        result = result_message(outcome.result, frame.sequence, outcome.timings, None)
        result.capture_time.FromNanoseconds(round(frame.received_unix * 1e9))
        message = pb.CameraTrackResult(
            camera_id=self._camera_id, target_id=target_id, session_id=outcome.session_id, result=result
        )
        await self._directory.publish(
            self.camera_key, target_id, message.SerializeToString(), outcome.result.bbox
        )

    async def _watchdog_loop(self) -> None:
        # Four looks per staleness bound: a hung camera is reported within 1.25 bounds.
        interval = min(1.0, max(0.05, self._settings.stale_after_s / 4))
        while True:
            await self.report()
            stop_if_cancelled()  # the report suppresses errors, one of which may stand for a cancellation
            await asyncio.sleep(interval)

    async def report(self) -> None:
        """Export the camera's state to the metrics and to its status record."""
        health = self._reader.health
        now = self._monotonic()
        state = observed_state(health, now, self._settings.stale_after_s)
        age = None if health.last_frame_at is None else now - health.last_frame_at
        self._metrics.report(self.camera_key, state, health.reconnects, self._reader.dropped_frames, age)
        last_frame_unix = None if age is None else time.time() - age
        status = CameraStatus(state.value, self._worker_id, health.reconnects, last_frame_unix)
        with contextlib.suppress(Exception):  # a status report is best effort; Redis may be down briefly
            await self._directory.report_status(self.camera_key, status)
