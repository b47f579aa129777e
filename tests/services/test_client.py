"""`TrackingClient` against the real service over loopback gRPC (memory store, embedded siamrpn_alex)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, get_type_hints

import cv2
import grpc
import numpy as np
import pytest
import pytest_asyncio
from google.protobuf.descriptor import FieldDescriptor
from grpc import aio

from siamstream.package import read_package
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackStatus
from siamstream_services.client.client import TrackingClient
from siamstream_services.client.frames import ImageFormat, encode_frame
from siamstream_services.client.in_flight import InFlightFrames
from siamstream_services.client.results import TrackerOptionFields
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.session_fixtures import (
    API_KEY_A,
    API_KEY_B,
    INIT_BOX,
    TRACKER,
    Service,
    moving_target_frames,
    running_service,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

FRAMES = 5
JPEG_QUALITY = 80


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_target_frames(FRAMES)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(package_dir: Path):
    async with running_service(package_dir) as running:
        yield running


def client_of(service: Service, key: str | None = API_KEY_A, **options: Any) -> TrackingClient:
    return TrackingClient(f"127.0.0.1:{service.port}", api_key=key, **options)


def offline_boxes(package_dir: Path, frames: list[np.ndarray]) -> list[tuple[float, ...]]:
    """The offline tracker's boxes on `frames`, rounded to float32 as the API carries them."""
    package = read_package(package_dir / TRACKER)
    results = OfflineTracker(package.config, PackageRunner(package)).track_sequence(frames, INIT_BOX)
    return [tuple(np.asarray(result.bbox, dtype=np.float32).tolist()) for result in results]


def jpeg_decoded(frame: np.ndarray) -> np.ndarray:
    """`frame` after the client's JPEG encoding and the service's decoding."""
    decoded = cv2.imdecode(
        np.frombuffer(encode_frame(frame, jpeg_quality=JPEG_QUALITY), np.uint8), cv2.IMREAD_COLOR
    )
    assert decoded is not None
    return decoded


@pytest.mark.parametrize("image_format", [ImageFormat.PNG, ImageFormat.JPEG])
async def test_track_stream_gives_the_offline_trackers_boxes(
    service: Service, package_dir: Path, frames: list[np.ndarray], image_format: ImageFormat
) -> None:
    if image_format is ImageFormat.JPEG:
        # The service sees the decoded JPEG, so the offline tracker gets exactly those pixels.
        expected_frames = [jpeg_decoded(f) for f in frames]
        assert not np.array_equal(expected_frames[1], frames[1])  # lossy: the test would notice a mix-up
    else:
        expected_frames = frames
    expected = offline_boxes(package_dir, expected_frames)

    async with client_of(service, image_format=image_format, jpeg_quality=JPEG_QUALITY) as client:
        answers = [answer async for answer in client.track_stream(frames, INIT_BOX, TRACKER)]
        sessions = await client.list()

    assert [answer.result.box for answer in answers] == expected
    assert [answer.result.frame_index for answer in answers] == list(range(FRAMES))
    assert [answer.result.client_frame_number for answer in answers] == list(range(FRAMES))
    assert all(answer.frame is frame for answer, frame in zip(answers, frames, strict=True))
    assert len({answer.session_id for answer in answers}) == 1
    assert answers[0].result.track_result().score is None  # the start frame has no score, as offline
    for answer in answers[1:]:
        round_trip_ms = answer.result.round_trip_ms
        assert round_trip_ms is not None
        assert 0.0 <= answer.result.score <= 1.0
        assert round_trip_ms > 0 and answer.result.server_ms["inference_ms"] > 0
        assert answer.result.server_ms["total_ms"] <= round_trip_ms
    assert answers[0].session_id not in [session.session_id for session in sessions]  # stopped on close


async def test_track_stream_keeps_at_most_max_in_flight_frames_ahead(
    service: Service, frames: list[np.ndarray]
) -> None:
    pulled = 0

    def source() -> Iterator[np.ndarray]:
        nonlocal pulled
        for frame in frames[:4]:
            pulled += 1
            yield frame

    ahead = []
    async with client_of(service) as client:
        async for answer in client.track_stream(source(), INIT_BOX, TRACKER, max_in_flight=1):
            # Frames read but not yet answered: the one answered now, plus one waiting for its slot.
            ahead.append(pulled - answer.result.frame_index)
    assert max(ahead) <= 2 and len(ahead) == 4


async def test_track_stream_raises_the_frame_sources_error(
    service: Service, frames: list[np.ndarray]
) -> None:
    def broken_source() -> Iterator[np.ndarray]:
        yield frames[0]
        raise ValueError("camera unplugged")

    answers = []
    async with client_of(service) as client:
        with pytest.raises(ValueError, match="camera unplugged"):
            async for answer in client.track_stream(broken_source(), INIT_BOX, TRACKER, max_in_flight=1):
                answers.append(answer)
    assert [answer.result.frame_index for answer in answers] == [0]


class ScriptedTracking(pb_grpc.TrackingServiceServicer):
    """A `Track` server that answers the start and the first `answered` frames at once, then reads on
    without answering; after the last request it ends the stream only if `ends` (else it hangs, as a
    replica stuck on a dead backend or a lost connection does). Records whether the client cancelled."""

    def __init__(self, answered: int, ends: bool) -> None:
        self.answered = answered
        self.ends = ends
        self.cancelled = asyncio.Event()

    async def Track(
        self, requests: AsyncIterator[pb.TrackRequest], context: aio.ServicerContext
    ) -> AsyncIterator[pb.TrackResponse]:
        try:
            number = 0
            async for _ in requests:
                if number <= self.answered:
                    result = pb.TrackResult(
                        frame_index=number, client_frame_number=number, status=pb.TRACK_STATUS_TRACKING
                    )
                    yield pb.TrackResponse(session_id="scripted", result=result)
                number += 1
            if not self.ends:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class AnsweringAheadTracking(pb_grpc.TrackingServiceServicer):
    """A `Track` server that answers at once, before any request has come, then waits."""

    async def Track(
        self, requests: AsyncIterator[pb.TrackRequest], context: aio.ServicerContext
    ) -> AsyncIterator[pb.TrackResponse]:
        result = pb.TrackResult(frame_index=0, status=pb.TRACK_STATUS_TRACKING)
        yield pb.TrackResponse(session_id="ahead", result=result)
        await asyncio.Event().wait()


@asynccontextmanager
async def scripted_client(servicer: pb_grpc.TrackingServiceServicer) -> AsyncIterator[TrackingClient]:
    """A client of `servicer` served over loopback gRPC."""
    server = aio.server()
    pb_grpc.add_TrackingServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with TrackingClient(f"127.0.0.1:{port}") as client:
            yield client
    finally:
        await server.stop(0)


@pytest.mark.parametrize(
    ("servicer", "late"),
    [
        (ScriptedTracking(answered=0, ends=False), "no answer to frame 1 within 0.5 s"),
        (
            ScriptedTracking(answered=FRAMES, ends=False),
            "the stream did not end within 0.5 s of the last answer and the end of the frames",
        ),
    ],
    ids=["silent-after-start", "never-ends"],
)
async def test_track_stream_gives_up_on_a_server_that_stops_answering(
    frames: list[np.ndarray], servicer: ScriptedTracking, late: str
) -> None:
    answers = []
    async with scripted_client(servicer) as client:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as gave_up:
            async for answer in client.track_stream(frames, INIT_BOX, TRACKER, answer_timeout_s=0.5):
                answers.append(answer.result.frame_index)
        waited = time.monotonic() - started
        async with asyncio.timeout(5.0):
            await servicer.cancelled.wait()  # the client ended the call, not only its reading
    assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    details = gave_up.value.details()
    assert details is not None and late in details
    assert answers == list(range(min(servicer.answered + 1, FRAMES)))
    assert waited < 3.0  # the timeout, and room for encoding on a loaded machine


async def test_track_stream_waits_for_a_slow_frame_source_without_a_timeout(
    frames: list[np.ndarray],
) -> None:
    """Time with no frame in flight belongs to the frame source (a camera between frames), not the server."""

    async def slow_camera() -> AsyncIterator[np.ndarray]:
        for frame in frames[:3]:
            await asyncio.sleep(1.0)  # twice the answer timeout, which a loopback answer stays well within
            yield frame

    async with scripted_client(ScriptedTracking(answered=FRAMES, ends=True)) as client:
        stream = client.track_stream(slow_camera(), INIT_BOX, TRACKER, max_in_flight=1, answer_timeout_s=0.5)
        answers = [answer.result.frame_index async for answer in stream]
    assert answers == [0, 1, 2]


async def test_track_stream_refuses_an_answer_with_no_frame_in_flight(frames: list[np.ndarray]) -> None:
    async def camera_not_ready() -> AsyncIterator[np.ndarray]:
        await asyncio.Event().wait()
        yield frames[0]

    async with scripted_client(AnsweringAheadTracking()) as client:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in client.track_stream(camera_not_ready(), INIT_BOX, TRACKER):
                pass
    assert refused.value.code() == grpc.StatusCode.INTERNAL
    assert refused.value.details() == "the server answered with no frame in flight"


async def test_waiting_between_frames_leaves_no_task_behind_when_cancelled() -> None:
    """A consumer cancelled while no frame is in flight (the wait for the next answer or the next frame
    sent) takes both of its waits down with it."""
    in_flight: InFlightFrames[int] = InFlightFrames(answer_timeout_s=1.0)

    async def silent_server() -> AsyncIterator[int]:
        await asyncio.Event().wait()
        yield 0

    before = asyncio.all_tasks()
    waiting = asyncio.ensure_future(in_flight.next_answer(silent_server()))
    await asyncio.sleep(0.05)  # into the wait for the read or the next frame
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.05)  # the cancelled waits finish
    assert asyncio.all_tasks() - before == set()


async def test_the_typed_options_are_the_fields_of_tracker_options() -> None:
    # `TrackerOptionFields` types the `options` of a start; it must follow tracking.proto.
    python_types = {
        FieldDescriptor.CPPTYPE_FLOAT: float,
        FieldDescriptor.CPPTYPE_DOUBLE: float,
        FieldDescriptor.CPPTYPE_BOOL: bool,
        FieldDescriptor.CPPTYPE_INT32: int,
        FieldDescriptor.CPPTYPE_UINT32: int,
    }
    proto = {field.name: python_types[field.cpp_type] for field in pb.TrackerOptions.DESCRIPTOR.fields}
    assert get_type_hints(TrackerOptionFields) == proto


async def test_unary_calls_start_push_get_list_stop(service: Service, frames: list[np.ndarray]) -> None:
    async with client_of(service, key=API_KEY_B) as client:
        started = await client.start(
            frames[0], INIT_BOX, TRACKER, options={"penalty_k": 0.2}, client_frame_number=7
        )
        assert started.result.box == INIT_BOX and started.result.status is TrackStatus.TRACKING
        pushed = await client.push(started.session_id, encode_frame(frames[1]), client_frame_number=8)
        assert pushed.frame_index == 1 and pushed.client_frame_number == 8
        got = await client.get(started.session_id)
        assert got.frame_count == 2 and got.tracker == TRACKER
        assert got.last_result.box == pushed.box and got.last_result.server_ms == {}
        assert got.options["penalty_k"] == pytest.approx(0.2)
        assert [session.session_id for session in await client.list(page_size=1)] == [started.session_id]
        stopped = await client.stop(started.session_id)
        assert stopped.frame_count == 2
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await client.get(started.session_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await client.push(started.session_id, frames[2])
        assert stale.value.code() == grpc.StatusCode.NOT_FOUND


async def test_calls_without_the_api_key_are_unauthenticated(service: Service) -> None:
    async with client_of(service, key=None) as client:
        for call in (client.check_access, client.list):
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await call()
            assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with client_of(service) as client:
        await client.check_access()


async def test_client_speaks_mutual_tls(pki: Path, package_dir: Path, frames: list[np.ndarray]) -> None:
    tls = {
        "tls_cert_file": pki / "server.pem",
        "tls_key_file": pki / "server.key",
        "tls_client_ca_file": pki / "ca.pem",
    }
    async with running_service(package_dir, **tls) as service:
        client = client_of(
            service,
            root_certificates=(pki / "ca.pem").read_bytes(),
            certificate_chain=(pki / "client.pem").read_bytes(),
            private_key=(pki / "client.key").read_bytes(),
        )
        async with client:
            started = await client.start(frames[0], INIT_BOX, TRACKER)
            assert [session.session_id for session in await client.list()] == [started.session_id]
        async with client_of(service, root_certificates=(pki / "ca.pem").read_bytes()) as anonymous:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await anonymous.list()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
