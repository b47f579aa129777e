"""The camera RPCs of the tracking API: requests in, `CameraDirectory` calls, messages out.

The gRPC front end only talks to Redis: ingest workers (in this process or others) pick the cameras up.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import RedisError

from siamstream.v1 import tracking_pb2 as pb
from siamstream_services.session.convert import track_options
from siamstream_services.session.errors import InvalidArgument, NotFound, ServiceError, Unavailable
from siamstream_services.session.sessions import SessionManager

from .directory import AttachRefused, CameraDirectory, TargetSpec
from .health import CameraState

CAMERA_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
STATES = {
    CameraState.CONNECTING: pb.CAMERA_STATE_CONNECTING,
    CameraState.STREAMING: pb.CAMERA_STATE_STREAMING,
    CameraState.STALE: pb.CAMERA_STATE_STALE,
    CameraState.RECONNECTING: pb.CAMERA_STATE_RECONNECTING,
    CameraState.STOPPED: pb.CAMERA_STATE_STOPPED,
}


class AlreadyExists(ServiceError):
    """A camera id that another caller registered."""

    code = grpc.StatusCode.ALREADY_EXISTS


class TooManyCameras(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


@contextlib.contextmanager
def directory_reachable() -> Iterator[None]:
    """Report a Redis failure of the camera directory (connection, timeout) as UNAVAILABLE: retryable."""
    try:
        yield
    except (RedisError, OSError) as error:
        raise directory_unavailable(error) from None


def directory_unavailable(error: Exception) -> Unavailable:
    return Unavailable(f"camera directory unavailable: {error}")


def public_url(url: str) -> str:
    """`url` without user name and password, for listings."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class CameraApi:
    """AttachCamera, DetachCamera, ListCameras and WatchTrack for one owner at a time."""

    def __init__(self, directory: CameraDirectory, manager: SessionManager) -> None:
        self._directory = directory
        self._manager = manager
        self._closing = asyncio.Event()

    def close(self) -> None:
        """End every WatchTrack stream cleanly (OK) within one watch block, for a draining replica; the
        watchers reconnect to another replica."""
        self._closing.set()

    async def attach(self, owner: str, request: pb.AttachCameraRequest) -> pb.AttachCameraResponse:
        if not CAMERA_ID.match(request.camera_id):
            raise InvalidArgument("camera_id must be 1 to 64 characters from [A-Za-z0-9_.-]")
        if urlsplit(request.url).scheme not in ("rtsp", "rtsps"):
            raise InvalidArgument(f"url must be rtsp:// or rtsps://, got {public_url(request.url)!r}")
        if request.tracker not in self._manager.tracker_names:
            known = ", ".join(self._manager.tracker_names)
            raise InvalidArgument(f"unknown tracker {request.tracker!r}; this service runs: {known}")
        if not request.HasField("box"):
            raise InvalidArgument("box is required")
        box = (request.box.x, request.box.y, request.box.width, request.box.height)
        if not all(map(math.isfinite, box)) or box[2] <= 0 or box[3] <= 0:
            raise InvalidArgument("box must be finite with width and height > 0")
        options = track_options(request.options)
        nearest = request.HasField("box_time")
        spec = TargetSpec(
            target_id="",
            tracker=request.tracker,
            box=box,
            options_json=options.model_dump_json(exclude_none=True),
            anchor_unix=request.box_time.ToNanoseconds() / 1e9 if nearest else time.time(),
            nearest=nearest,
        )
        try:
            with directory_reachable():
                target_id = await self._directory.attach(owner, request.camera_id, request.url, spec)
        except AttachRefused as refused:
            raise _refusal(refused, request.camera_id) from None
        return pb.AttachCameraResponse(camera_id=request.camera_id, target_id=target_id)

    async def detach(self, owner: str, request: pb.DetachCameraRequest) -> pb.DetachCameraResponse:
        with directory_reachable():
            sessions = await self._directory.detach(owner, request.camera_id, request.target_id)
        if sessions is None:
            raise NotFound(f"camera {request.camera_id!r} target {request.target_id!r} not found")
        for session_id in sessions.values():
            with contextlib.suppress(NotFound):  # already expired
                await self._manager.stop(owner, session_id)
        return pb.DetachCameraResponse()

    async def list(self, owner: str) -> pb.ListCamerasResponse:
        with directory_reachable():
            return pb.ListCamerasResponse(cameras=await self._cameras_of(owner))

    async def _cameras_of(self, owner: str) -> list[pb.Camera]:
        cameras = []
        for camera_id in await self._directory.camera_ids():
            spec = await self._directory.camera(camera_id)
            if spec is None or spec.owner != owner:
                continue
            sessions = await self._directory.sessions(camera_id)
            status = await self._directory.status(camera_id)
            camera = pb.Camera(
                camera_id=camera_id,
                url=public_url(spec.url),
                targets=[
                    pb.CameraTarget(
                        target_id=tid, tracker=spec.targets[tid].tracker, session_id=sessions.get(tid, "")
                    )
                    for tid in sorted(spec.targets)
                ],
            )
            if status is not None:
                camera.state = STATES.get(CameraState(status.state), pb.CAMERA_STATE_UNSPECIFIED)
                camera.worker_id = status.worker_id
                camera.reconnects = status.reconnects
                if status.last_frame_unix is not None:
                    stamp = Timestamp()
                    stamp.FromNanoseconds(round(status.last_frame_unix * 1e9))
                    camera.last_frame_time.CopyFrom(stamp)
            cameras.append(camera)
        return cameras

    async def watch(self, owner: str, request: pb.WatchTrackRequest) -> AsyncIterator[pb.CameraTrackResult]:
        with directory_reachable():
            spec = await self._directory.camera(request.camera_id)
        if spec is None or spec.owner != owner or request.target_id not in spec.targets:
            raise NotFound(f"camera {request.camera_id!r} target {request.target_id!r} not found")
        try:
            async for payload in self._directory.watch(request.camera_id, request.target_id, self._closing):
                yield pb.CameraTrackResult.FromString(payload)
        except (RedisError, OSError) as error:
            # A draining replica closes its Redis client once the grace period is over, possibly under a
            # read still blocked: that ends the stream like the drain itself, not as a failure.
            if not self._closing.is_set():
                raise directory_unavailable(error) from None


def _refusal(refused: AttachRefused, camera_id: str) -> ServiceError:
    if refused.reason == AttachRefused.ANOTHER_OWNER:
        return AlreadyExists(f"camera id {camera_id!r} is taken")
    if refused.reason == AttachRefused.ANOTHER_URL:
        return InvalidArgument(f"camera {camera_id!r} exists with another url")
    if refused.reason == AttachRefused.TOO_MANY_TARGETS:
        return TooManyCameras(f"camera {camera_id!r} has the most targets allowed")
    return TooManyCameras("the deployment reads the most cameras allowed")
