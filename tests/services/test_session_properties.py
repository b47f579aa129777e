"""Property tests of every tracking RPC: no request a client can send is answered INTERNAL or UNKNOWN, and a
refused call changes nothing.

Hypothesis draws boxes (subnormal, fractional, huge, non-finite, at the bounds), option values, frame
headers (encoded files with arbitrary sizes or cut anywhere, raw shapes and formats that disagree with their
data) and ids, and sends them over real gRPC to an in-process service (memory store, embedded siamrpn_alex).
The example counts are bounded so that the module runs in well under a minute.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.v1 import tracking_pb2 as pb
from tests.services.replica_fixtures import KEY, Replica, serving_replica
from tests.services.session_fixtures import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    INIT_BOX,
    MAX_FRAME_BYTES,
    MAX_FRAME_PIXELS,
    TRACKER,
    Service,
    box_message,
    encode,
    moving_target_frames,
    png_frame,
    running_service,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

CODE = grpc.StatusCode
# Codes that mean the service failed, not the request.
FAULTS = {CODE.INTERNAL, CODE.UNKNOWN}
# Each example is one or two RPCs (a tracked frame runs the model: tens of milliseconds).
EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

FRAMES = moving_target_frames(2)
PNG = encode(FRAMES[1])
JPEG = encode(FRAMES[1], ".jpg")
WEBP = encode(FRAMES[1], ".webp")

# Sides from the issue (1e-40, 0.01, 3.4e38, 1e12), the bounds' edges, and any float32.
SIDES = st.one_of(
    st.sampled_from([1e-40, 0.01, 0.999, 1.0, 3.4e38, 1e12, 639.0, 640.0, 641.0, 480.0, 481.0, -1.0, 0.0]),
    st.floats(width=32),
)
EDGES = st.one_of(st.sampled_from([0.0, -0.5, 319.0, 320.0, -640.0, -1e30, 1e30]), st.floats(width=32))
BOXES = st.builds(pb.Box, x=EDGES, y=EDGES, width=SIDES, height=SIDES)
UNIT = st.one_of(st.sampled_from([0.0, 1.0, -0.0, 1e-45, 1.0000001]), st.floats(width=32))
OPTIONS = st.builds(
    pb.TrackerOptions,
    penalty_k=st.none() | UNIT,
    window_influence=st.none() | UNIT,
    lr=st.none() | UNIT,
    template_update=st.none() | st.booleans(),
    tracking_threshold=st.none() | UNIT,
    lost_threshold=st.none() | UNIT,
    lost_after_frames=st.none() | st.sampled_from([0, 1, 1000, 1001, 2**32 - 1]),
)
UINT32 = st.one_of(
    st.sampled_from([0, 1, 2, FRAME_WIDTH, FRAME_HEIGHT, 2**16, 2**32 - 1]), st.integers(0, 2**32 - 1)
)


def png_with_size(width: int, height: int) -> bytes:
    """A real PNG of the frame whose header claims `width` x `height` (CRC fixed up)."""
    header = struct.pack(">II", width, height) + PNG[24:29]
    return PNG[:16] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + PNG[33:]


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real JPEG of the frame whose frame header claims `width` x `height`."""
    data = bytearray(JPEG)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


SIZES = st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1))
ENCODED = st.one_of(
    st.sampled_from([PNG, JPEG, WEBP]),
    st.builds(
        lambda data, keep: data[: int(len(data) * keep)], st.sampled_from([PNG, JPEG, WEBP]), st.floats(0, 1)
    ),
    st.builds(lambda data, keep: data[: int(len(data) * keep)] + b"\xff\xd9", st.just(JPEG), st.floats(0, 1)),
    SIZES.map(lambda size: png_with_size(*size)),
    SIZES.map(lambda size: jpeg_with_size(*size)),
    st.binary(max_size=64).map(lambda tail: b"\xff\xd8" + tail),
    st.binary(max_size=64).map(lambda tail: b"RIFF\x10\x00\x00\x00WEBP" + tail),
    st.binary(max_size=64),
)


@st.composite
def raw_images(draw: st.DrawFn) -> pb.RawImage:
    """Raw frames whose shape, format and byte count agree or not; the data stays under the byte limit."""
    width, height = draw(UINT32), draw(UINT32)
    pixel_format = draw(st.sampled_from([0, 1, 2, 3, 4, 255]))
    channels = 1 if pixel_format == 3 else 3
    expected = width * height * channels
    length = draw(st.sampled_from([expected, expected - 1, expected + 1, 0, 7]))
    length = length if 0 <= length <= MAX_FRAME_BYTES else 7
    data = draw(st.sampled_from([b"\x00", b"\xff", b"\x80"])) * length
    # Any wire value, unknown formats (255) included: the service must validate it.
    return pb.RawImage(data=data, width=width, height=height, pixel_format=pixel_format)  # type: ignore[arg-type]


VALID_RAW = pb.RawImage(
    data=FRAMES[1].tobytes(), width=FRAME_WIDTH, height=FRAME_HEIGHT, pixel_format=pb.PIXEL_FORMAT_BGR8
)
FRAME_NUMBERS = st.none() | st.sampled_from([0, 1, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)


@st.composite
def frames(draw: st.DrawFn) -> pb.Frame:
    kind = draw(st.sampled_from(["encoded", "raw", "valid_raw", "empty"]))
    frame = pb.Frame(client_frame_number=draw(FRAME_NUMBERS))
    if kind == "encoded":
        frame.encoded = draw(ENCODED)
    elif kind == "raw":
        frame.raw.CopyFrom(draw(raw_images()))
    elif kind == "valid_raw":
        frame.raw.CopyFrom(VALID_RAW)
    return frame


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(package_dir: Path) -> AsyncIterator[Service]:
    async with running_service(
        package_dir, max_frame_pixels=MAX_FRAME_PIXELS, max_frame_bytes=MAX_FRAME_BYTES
    ) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session_id(service: Service) -> str:
    """A session the tests push to; any example may move it on, a refused one must not."""
    request = pb.StartTrackRequest(tracker=TRACKER, frame=png_frame(FRAMES[0]), box=box_message(INIT_BOX))
    return (await service.stub.StartTrack(request, metadata=KEY)).session_id


async def outcome(call: object) -> CODE:
    """The status code an awaited call ends with."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return CODE.OK


async def session_state(service: Service, session_id: str) -> pb.TrackSession:
    return await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=KEY)


async def all_sessions(service: Service) -> pb.ListTracksResponse:
    return await service.stub.ListTracks(pb.ListTracksRequest(page_size=100), metadata=KEY)


@EXAMPLES
@given(box=BOXES, options=OPTIONS, tracked=st.booleans())
async def test_start_track_with_any_box_and_options(
    service: Service, box: pb.Box, options: pb.TrackerOptions, tracked: bool
) -> None:
    """A start is accepted or refused as the client's fault; an accepted one tracks its next frame."""
    before = await all_sessions(service)
    request = pb.StartTrackRequest(tracker=TRACKER, frame=png_frame(FRAMES[0]), box=box, options=options)
    try:
        started = await service.stub.StartTrack(request, metadata=KEY)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in FAULTS, error.details()
        assert await all_sessions(service) == before  # the refused start created nothing
        return
    try:
        if tracked:
            push = pb.PushFrameRequest(session_id=started.session_id, frame=png_frame(FRAMES[1]))
            code = await outcome(service.stub.PushFrame(push, metadata=KEY))
            assert code is CODE.OK
    finally:
        await service.stub.StopTrack(pb.StopTrackRequest(session_id=started.session_id), metadata=KEY)


@EXAMPLES
@given(frame=frames())
async def test_push_frame_with_any_frame(service: Service, session_id: str, frame: pb.Frame) -> None:
    before = await session_state(service, session_id)

    code = await outcome(
        service.stub.PushFrame(pb.PushFrameRequest(session_id=session_id, frame=frame), metadata=KEY)
    )

    assert code not in FAULTS
    if code is not CODE.OK:
        assert await session_state(service, session_id) == before


@EXAMPLES
@given(frame=frames(), box=BOXES)
async def test_start_track_with_any_frame(service: Service, frame: pb.Frame, box: pb.Box) -> None:
    before = await all_sessions(service)
    request = pb.StartTrackRequest(tracker=TRACKER, frame=frame, box=box)
    try:
        started = await service.stub.StartTrack(request, metadata=KEY)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in FAULTS, error.details()
        assert await all_sessions(service) == before
        return
    await service.stub.StopTrack(pb.StopTrackRequest(session_id=started.session_id), metadata=KEY)


IDS = st.one_of(st.sampled_from(["", " ", "\x00", "a" * 4096]), st.text(max_size=200))


@settings(EXAMPLES, max_examples=60)
@given(any_id=IDS, page_size=st.integers(-(2**31), 2**31 - 1), page_token=IDS)
async def test_get_stop_and_list_with_any_ids(
    service: Service, session_id: str, any_id: str, page_size: int, page_token: str
) -> None:
    before = await session_state(service, session_id)
    calls = [
        service.stub.GetTrack(pb.GetTrackRequest(session_id=any_id), metadata=KEY),
        service.stub.StopTrack(pb.StopTrackRequest(session_id=any_id), metadata=KEY),
        service.stub.ListTracks(
            pb.ListTracksRequest(page_size=page_size, page_token=page_token), metadata=KEY
        ),
    ]
    for call in calls:
        assert await outcome(call) not in FAULTS
    assert await session_state(service, session_id) == before


@settings(EXAMPLES, max_examples=15)
@given(
    first=st.sampled_from(["start", "frame"]),
    box=BOXES,
    later=st.lists(st.one_of(frames(), st.just("start")), max_size=3),
)
async def test_track_stream_with_any_messages(
    service: Service, session_id: str, first: str, box: pb.Box, later: list
) -> None:
    """Sent as a client of the one-answer-per-request protocol does: each request's answer is read before
    the next request is written, so the stream's status is the server's, not a write racing its end."""
    before = await session_state(service, session_id)
    requests = [
        pb.TrackRequest(start=pb.StartTrackRequest(tracker=TRACKER, frame=png_frame(FRAMES[0]), box=box))
        if first == "start"
        else pb.TrackRequest(frame=png_frame(FRAMES[0]))
    ]
    for message in later:
        if message == "start":
            requests.append(pb.TrackRequest(start=pb.StartTrackRequest(tracker=TRACKER)))
        else:
            requests.append(pb.TrackRequest(frame=message))

    call = service.stub.Track(metadata=KEY)
    try:
        for request in requests:
            await call.write(request)
            await call.read()
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
    except grpc.aio.AioRpcError as error:
        assert error.code() not in FAULTS, error.details()
        stream_session = dict(await call.trailing_metadata()).get("siamstream-session-id")
        if stream_session:  # an error ends the stream but keeps its session: stop it here
            await service.stub.StopTrack(pb.StopTrackRequest(session_id=stream_session), metadata=KEY)
    assert await session_state(service, session_id) == before  # another session's stream


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def camera_replica(package_dir: Path, redis_server: RedisServer) -> AsyncIterator[Replica]:
    async with serving_replica(package_dir, store_url=redis_server.url) as replica:
        yield replica


@settings(EXAMPLES, max_examples=25)
@given(box=BOXES, options=OPTIONS)
async def test_attach_camera_with_any_box(
    camera_replica: Replica, box: pb.Box, options: pb.TrackerOptions
) -> None:
    request = pb.AttachCameraRequest(
        camera_id="property-cam",
        url="rtsp://192.0.2.1/stream",  # TEST-NET-1: never read here, no worker runs
        box=box,
        tracker=TRACKER,
        options=options,
    )
    try:
        await camera_replica.stub.AttachCamera(request, metadata=KEY)
    except grpc.aio.AioRpcError as error:
        assert error.code() not in FAULTS, error.details()
        return
    await camera_replica.stub.DetachCamera(pb.DetachCameraRequest(camera_id="property-cam"), metadata=KEY)
    assert np.isfinite([box.x, box.y, box.width, box.height]).all() and min(box.width, box.height) >= 1
