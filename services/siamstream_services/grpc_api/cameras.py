"""The camera RPCs of the tracking API: requests in, `CameraDirectory` calls, messages out.

The gRPC front end only talks to Redis: ingest workers (in this process or others) pick the cameras up.
Camera ids belong to the caller's API key (`camera_key`): another key's camera of the same id is neither
found, listed nor in the way. A URL is stored only once its grammar and every address of its host pass
(`cameras.urls`); it is shown only without credentials and query.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import RedisError

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import AttachRefused, CameraDirectory, TargetSpec, camera_key
from siamstream_services.cameras.health import CameraState
from siamstream_services.cameras.urls import (
    CameraUrlError,
    check_camera_address,
    parse_camera_url,
    public_url,
)
from siamstream_services.convert import box_xywh, track_options
from siamstream_services.core.errors import InvalidArgument, NotFound, ServiceError, Unavailable
from siamstream_services.core.sessions import SessionManager
from siamstream_services.logs import session_scope
from siamstream_services.v1 import tracking_pb2 as pb

log = logging.getLogger(__name__)

CAMERA_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# A resolver that has not answered in this long will not: the caller may retry.
RESOLVE_TIMEOUT_S = 2.0
# Camera host lookups get threads of their own, so that attaches naming slow-resolving hosts can hold
# only these (a lookup outlives its timeout), never the threads that decode every client's frames.
RESOLVER_THREADS = 4
STATES = {
    CameraState.CONNECTING: pb.CAMERA_STATE_CONNECTING,
    CameraState.STREAMING: pb.CAMERA_STATE_STREAMING,
    CameraState.STALE: pb.CAMERA_STATE_STALE,
    CameraState.RECONNECTING: pb.CAMERA_STATE_RECONNECTING,
    CameraState.STOPPED: pb.CAMERA_STATE_STOPPED,
}


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
    # The detail names Redis' host and port: for the operator's log, not for clients.
    log.warning("camera directory unavailable: %s", str(error) or type(error).__name__)
    return Unavailable("camera directory unavailable")


class CameraApi:
    """AttachCamera, DetachCamera, ListCameras and WatchTrack for one owner at a time."""

    def __init__(self, directory: CameraDirectory, manager: SessionManager) -> None:
        self._directory = directory
        self._manager = manager
        self._closing = asyncio.Event()
        self._resolver = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="camera-resolver")
        self._scoped = False
        self._scoping = asyncio.Lock()

    def close(self) -> None:
        """For a draining replica: end every WatchTrack stream cleanly (OK) within one watch block (the
        watchers reconnect to another replica) and let the resolver threads go; an attach that has not
        had its lookup yet is answered UNAVAILABLE, to be retried on another replica."""
        self._closing.set()
        self._resolver.shutdown(wait=False, cancel_futures=True)

    async def _scope_unscoped_once(self) -> None:
        """Move the cameras an older release stored under their bare ids to their owners' keys, before this
        replica's first camera call answers (and on the next call again while that fails), so that they
        are listed, watched and detached whether or not a worker has run since the upgrade."""
        if self._scoped:
            return
        async with self._scoping:
            if not self._scoped:
                await self._directory.scope_unscoped(await self._directory.camera_keys())
                self._scoped = True

    async def attach(self, owner: str, request: pb.AttachCameraRequest) -> pb.AttachCameraResponse:
        if not CAMERA_ID.match(request.camera_id):
            raise InvalidArgument("camera_id must be 1 to 64 characters from [A-Za-z0-9_.-]")
        try:
            url = parse_camera_url(request.url)
        except CameraUrlError as error:
            raise InvalidArgument(f"url {error}") from None
        if request.tracker not in self._manager.tracker_names:
            known = ", ".join(self._manager.tracker_names)
            raise NotFound(f"unknown tracker {request.tracker!r}; this service runs: {known}")
        box = box_xywh(request)
        options = track_options(request.options)
        loop, networks = asyncio.get_running_loop(), self._directory.settings.camera_networks
        if self._closing.is_set():
            raise Unavailable("this replica is shutting down")
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                await loop.run_in_executor(self._resolver, check_camera_address, url, networks)
        except CameraUrlError as error:
            raise InvalidArgument(f"url {url.public()!r}: {error}") from None
        except (OSError, TimeoutError) as error:
            raise Unavailable(
                f"cannot resolve the camera host {url.host}: {str(error) or 'timed out'}"
            ) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the call itself was cancelled
                raise
            # close() dropped the lookup before a resolver thread took it up.
            raise Unavailable("this replica is shutting down") from None
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
                await self._scope_unscoped_once()
                target_id = await self._directory.attach(owner, request.camera_id, request.url, spec)
        except AttachRefused as refused:
            raise _refusal(refused, request.camera_id, self._directory.settings) from None
        return pb.AttachCameraResponse(camera_id=request.camera_id, target_id=target_id)

    async def detach(self, owner: str, request: pb.DetachCameraRequest) -> pb.DetachCameraResponse:
        with directory_reachable():
            await self._scope_unscoped_once()
            sessions = await self._directory.detach(owner, request.camera_id, request.target_id)
        if sessions is None:
            raise NotFound(f"camera {request.camera_id!r} target {request.target_id!r} not found")
        for session_id in sessions.values():
            # One scope per session: each stop's lines name its own, and the call's line none of them.
            with session_scope(), contextlib.suppress(NotFound):  # already expired
                await self._manager.stop(owner, session_id)
        return pb.DetachCameraResponse()

    async def list(self, owner: str) -> pb.ListCamerasResponse:
        with directory_reachable():
            await self._scope_unscoped_once()
            return pb.ListCamerasResponse(cameras=await self._cameras_of(owner))

    async def _cameras_of(self, owner: str) -> builtins.list[pb.Camera]:  # `list` is a method here
        cameras = []
        for camera_id in await self._directory.camera_ids_of(owner):
            key = camera_key(owner, camera_id)
            spec = await self._directory.camera(key)
            if spec is None:  # detached meanwhile
                continue
            sessions = await self._directory.sessions(key)
            status = await self._directory.status(key)
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

    async def watch(
        self, owner: str, request: pb.WatchTrackRequest
    ) -> AsyncGenerator[pb.CameraTrackResult, None]:
        key = camera_key(owner, request.camera_id)
        with directory_reachable():
            await self._scope_unscoped_once()
            spec = await self._directory.camera(key)
        if spec is None or request.target_id not in spec.targets:
            raise NotFound(f"camera {request.camera_id!r} target {request.target_id!r} not found")
        try:
            async for payload in self._directory.watch(key, request.target_id, self._closing):
                yield pb.CameraTrackResult.FromString(payload)
        except (RedisError, OSError) as error:
            # A draining replica closes its Redis client once the grace period is over, possibly under a
            # read still blocked: that ends the stream like the drain itself, not as a failure.
            if not self._closing.is_set():
                raise directory_unavailable(error) from None


def _refusal(refused: AttachRefused, camera_id: str, settings: IngestSettings) -> ServiceError:
    if refused.reason == AttachRefused.ANOTHER_URL:
        return InvalidArgument(f"camera {camera_id!r} exists with another url")
    if refused.reason == AttachRefused.TOO_MANY_TARGETS:
        return TooManyCameras(
            f"camera {camera_id!r} has {settings.max_targets_per_camera} targets, the most allowed"
        )
    if refused.reason == AttachRefused.TOO_MANY_OWNER_CAMERAS:
        return TooManyCameras(
            f"this API key has {settings.max_cameras_per_owner} cameras attached, the most allowed per key"
        )
    return TooManyCameras(f"the deployment reads {settings.max_cameras} cameras, the most allowed")
