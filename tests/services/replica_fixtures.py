"""Replicas of the session service wired from settings as `siamstream serve` wires them, and their checks.

Used by the integration tests against real servers (`test_service_redis.py`, `test_service_triton.py`):
each replica is `open_server(settings)` (its own catalog, backend, store client and metrics) on a free
loopback port, with a client channel. Boxes are compared with the offline tracker on the same frames.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream.package import read_package
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackResult
from siamstream_services.grpc_api.server import TrackingServer, open_server
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.protocol import SessionStore
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.session_fixtures import API_KEY_A, INIT_BOX, TRACKER, auth, box_message, png_frame

KEY = auth(API_KEY_A)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_STATUS = {
    "tracking": pb.TRACK_STATUS_TRACKING,
    "uncertain": pb.TRACK_STATUS_UNCERTAIN,
    "lost": pb.TRACK_STATUS_LOST,
}


@dataclass
class Replica:
    """One running service replica and a client of it."""

    server: TrackingServer
    channel: aio.Channel
    stub: pb_grpc.TrackingServiceStub

    async def start(self, frame: np.ndarray, number: int = 0) -> pb.StartTrackResponse:
        """StartTrack of TRACKER at INIT_BOX on `frame`."""
        request = pb.StartTrackRequest(
            tracker=TRACKER, frame=png_frame(frame, number), box=box_message(INIT_BOX)
        )
        return await self.stub.StartTrack(request, metadata=KEY)

    async def push(self, session_id: str, frame: np.ndarray, number: int) -> pb.TrackResult:
        request = pb.PushFrameRequest(session_id=session_id, frame=png_frame(frame, number))
        return (await self.stub.PushFrame(request, metadata=KEY)).result

    async def get(self, session_id: str) -> pb.TrackSession:
        return await self.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=KEY)

    async def wait_health(self, status: int, timeout_s: float) -> float:
        """Seconds until the overall health reports `status`; TimeoutError after `timeout_s`."""
        started = time.monotonic()
        watch = health_pb2_grpc.HealthStub(self.channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=timeout_s
        )
        try:
            async for answer in watch:
                if answer.status == status:
                    return time.monotonic() - started
        except aio.AioRpcError as error:
            raise TimeoutError(
                f"health did not become {status} within {timeout_s} s: {error.code()}"
            ) from None
        finally:
            watch.cancel()
        raise AssertionError("the health watch ended")


@asynccontextmanager
async def serving_replica(
    package_dir: Path, store: SessionStore | None = None, **settings: Any
) -> AsyncIterator[Replica]:
    """A replica built by `open_server` from `settings` (store_url, inference_backend...), over `store`
    when one is given; drained (closing its store) on exit."""
    values: dict[str, Any] = {
        "package_dir": package_dir,
        "api_keys": [API_KEY_A],
        "metrics_port": 0,
        "drain_grace_s": 1.0,
    }
    values.update(settings)
    server = open_server(ServiceSettings(**values), store=store)
    port = await server.start("127.0.0.1:0")
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Replica(server, channel, pb_grpc.TrackingServiceStub(channel))
    finally:
        await channel.close()
        await server.drain(grace_s=0.5)


def start_request(frame: np.ndarray, tracker: str = TRACKER, **options: bool) -> pb.StartTrackRequest:
    """StartTrack of `tracker` at INIT_BOX on `frame` (client frame 0) with the tracker `options`."""
    return pb.StartTrackRequest(
        tracker=tracker,
        frame=png_frame(frame, 0),
        box=box_message(INIT_BOX),
        options=pb.TrackerOptions(**options),
    )


async def track(
    stub: pb_grpc.TrackingServiceStub, frames: Sequence[np.ndarray], **options: bool
) -> tuple[str, list[pb.TrackResult]]:
    """Start at INIT_BOX on the first frame with `options`, push the rest; the session id and results."""
    started = await stub.StartTrack(start_request(frames[0], TRACKER, **options), metadata=KEY)
    results = [started.result]
    for number, frame in enumerate(frames[1:], start=1):
        request = pb.PushFrameRequest(session_id=started.session_id, frame=png_frame(frame, number))
        results.append((await stub.PushFrame(request, metadata=KEY)).result)
    return started.session_id, results


def offline_results(package_dir: Path, frames: Sequence[np.ndarray]) -> list[TrackResult]:
    """The offline tracker's results on `frames`, started at INIT_BOX on the first."""
    package = read_package(package_dir / TRACKER)
    return OfflineTracker(package.config, PackageRunner(package)).track_sequence(frames, INIT_BOX)


def assert_offline_results(got: Sequence[pb.TrackResult], expected: Sequence[TrackResult]) -> None:
    """The service's results are the offline ones, boxes and scores rounded to the API's float32."""
    assert len(got) == len(expected)
    for result, want in zip(got, expected, strict=True):
        assert result.frame_index == want.frame_index
        box = (result.box.x, result.box.y, result.box.width, result.box.height)
        assert box == tuple(np.asarray(want.bbox, dtype=np.float32).tolist()), f"frame {want.frame_index}"
        if want.score is not None:
            assert result.score == np.float32(want.score)
            assert result.status == _STATUS[want.status.value]
