"""The session service over real gRPC on loopback: memory store, embedded backend, real siamrpn_alex."""

from __future__ import annotations

import asyncio
import base64
import math
import re
import threading
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from siamstream.package import read_package
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream_services.core import sessions
from siamstream_services.core.frames import decode_frame
from siamstream_services.testing.ports import free_port
from siamstream_services.v1 import tracking_pb2 as pb
from tests.services.session_fixtures import (
    API_KEY_A,
    API_KEY_B,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    INIT_BOX,
    MAX_FRAME_BYTES,
    MAX_FRAME_PIXELS,
    TRACKER,
    Service,
    auth,
    box_message,
    encode,
    moving_target_frames,
    png_frame,
    running_service,
    status_of,
    stored_record,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

A = auth(API_KEY_A)
B = auth(API_KEY_B)
CODE = grpc.StatusCode
CALL_WAIT_S = 10.0  # bounds a wait on the service under test


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_target_frames(5)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(package_dir: Path):
    async with running_service(
        package_dir,
        max_frame_pixels=MAX_FRAME_PIXELS,
        max_frame_bytes=MAX_FRAME_BYTES,
        metrics_port=free_port(),
    ) as running:
        yield running


async def start(service: Service, frame: np.ndarray, key=A, **fields) -> pb.StartTrackResponse:
    request = pb.StartTrackRequest(
        tracker=TRACKER, frame=png_frame(frame, 0), box=box_message(INIT_BOX), **fields
    )
    return await service.stub.StartTrack(request, metadata=key)


async def test_pushed_sequence_gives_the_offline_trackers_boxes(
    service: Service, package_dir: Path, frames: list[np.ndarray]
) -> None:
    package = read_package(package_dir / TRACKER)
    expected = OfflineTracker(package.config, PackageRunner(package)).track_sequence(frames, INIT_BOX)

    started = await start(service, frames[0])
    results = [started.result]
    for number, frame in enumerate(frames[1:], start=1):
        # Alternate lossless encodings: PNG and raw BGR pixels decode to exactly the offline frames.
        if number % 2:
            message = png_frame(frame, number)
        else:
            raw = pb.RawImage(
                data=frame.tobytes(),
                width=FRAME_WIDTH,
                height=FRAME_HEIGHT,
                pixel_format=pb.PIXEL_FORMAT_BGR8,
            )
            message = pb.Frame(raw=raw, client_frame_number=number)
        response = await service.stub.PushFrame(
            pb.PushFrameRequest(session_id=started.session_id, frame=message), metadata=A
        )
        results.append(response.result)

    assert started.result.score == 1.0 and started.result.status == pb.TRACK_STATUS_TRACKING
    for got, want in zip(results, expected, strict=True):
        box = (got.box.x, got.box.y, got.box.width, got.box.height)
        # The API carries float32: the service's boxes are the offline boxes rounded to float32.
        assert box == tuple(np.asarray(want.bbox, dtype=np.float32).tolist())
        assert got.frame_index == want.frame_index
        if want.score is not None:
            assert got.score == np.float32(want.score)
            assert got.status == {"tracking": 1, "uncertain": 2, "lost": 3}[want.status.value]
    last = results[-1]
    assert last.client_frame_number == len(frames) - 1
    stages = last.timings
    assert stages.inference_ms > 0 and stages.decode_ms > 0 and stages.store_ms > 0
    parts = stages.decode_ms + stages.crop_ms + stages.inference_ms + stages.postprocess_ms + stages.store_ms
    assert stages.total_ms >= parts


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (
            {"frame": pb.Frame(encoded=b"not an image at all")},
            CODE.INVALID_ARGUMENT,
            "not a JPEG, PNG or WebP",
        ),
        ({"frame": pb.Frame()}, CODE.INVALID_ARGUMENT, "frame is empty"),
        ({"frame": pb.Frame(encoded=b"")}, CODE.INVALID_ARGUMENT, "frame is empty"),
        ({"box": box_message((10, 10, 0, 20))}, CODE.INVALID_ARGUMENT, "must be at least 1 pixel"),
        ({"box": box_message((10, 10, -5, 20))}, CODE.INVALID_ARGUMENT, "must be at least 1 pixel"),
        ({"box": box_message((0, 0, 8000, 8000))}, CODE.INVALID_ARGUMENT, "more than 2 times the 320x240"),
        ({"box": box_message((math.nan, 10, 20, 20))}, CODE.INVALID_ARGUMENT, "finite"),
        ({"box": box_message((FRAME_WIDTH + 5, 10, 20, 20))}, CODE.INVALID_ARGUMENT, "does not overlap"),
        ({"box": box_message((-50, -50, 20, 20))}, CODE.INVALID_ARGUMENT, "does not overlap"),
        ({"tracker": "siamrpn_nonexistent"}, CODE.NOT_FOUND, "unknown tracker 'siamrpn_nonexistent'"),
        ({"options": pb.TrackerOptions(penalty_k=2.0)}, CODE.INVALID_ARGUMENT, "penalty_k"),
        ({"options": pb.TrackerOptions(lost_after_frames=0)}, CODE.INVALID_ARGUMENT, "lost_after_frames"),
        (
            {"options": pb.TrackerOptions(tracking_threshold=0.2, lost_threshold=0.5)},
            CODE.INVALID_ARGUMENT,
            "at most tracking_threshold",
        ),
        ({"frame": png_frame(np.zeros((400, 500, 3), np.uint8))}, CODE.RESOURCE_EXHAUSTED, "500x400"),
    ],
    ids=lambda value: str(value)[:40] if not isinstance(value, dict) else next(iter(value)),
)
async def test_bad_start_requests(service: Service, frames, change: dict, code, message: str) -> None:
    request = pb.StartTrackRequest(tracker=TRACKER, frame=png_frame(frames[0]), box=box_message(INIT_BOX))
    for name, value in change.items():
        if isinstance(value, str):
            setattr(request, name, value)
        else:
            getattr(request, name).CopyFrom(value)
    before = await service.stub.ListTracks(pb.ListTracksRequest(page_size=100), metadata=A)
    got_code, details = await status_of(service.stub.StartTrack(request, metadata=A))
    assert got_code == code
    assert message in details
    after = await service.stub.ListTracks(pb.ListTracksRequest(page_size=100), metadata=A)
    assert after == before  # the refused start created nothing


async def test_bad_frames_leave_the_session_unchanged(service: Service, frames: list[np.ndarray]) -> None:
    started = await start(service, frames[0])
    session_id = started.session_id
    await service.stub.PushFrame(
        pb.PushFrameRequest(session_id=session_id, frame=png_frame(frames[1], 5)), metadata=A
    )
    before = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=A)
    version = (await stored_record(service.store, session_id)).version
    jpeg = encode(frames[2], ".jpg")
    big_raw = pb.RawImage(
        data=b"\0" * (MAX_FRAME_BYTES + 3), width=1, height=1, pixel_format=pb.PIXEL_FORMAT_BGR8
    )
    bad = [
        (pb.Frame(encoded=b"\xff\xd8garbage\xff\xd9"), CODE.INVALID_ARGUMENT, "JPEG frame is malformed"),
        (pb.Frame(encoded=jpeg[: len(jpeg) // 2]), CODE.INVALID_ARGUMENT, "truncated"),
        (pb.Frame(), CODE.INVALID_ARGUMENT, "frame is empty"),
        (pb.Frame(raw=big_raw), CODE.RESOURCE_EXHAUSTED, "bytes, the limit is"),
        (png_frame(np.zeros((100, 120, 3), np.uint8)), CODE.INVALID_ARGUMENT, "started on a 320x240 frame"),
        (
            pb.Frame(raw=pb.RawImage(data=b"\0" * 12, width=2, height=2)),
            CODE.INVALID_ARGUMENT,
            "pixel format",
        ),
        (png_frame(frames[2], 3), CODE.FAILED_PRECONDITION, "stale frame 3, session is at 5"),
    ]
    for frame, code, message in bad:
        request = pb.PushFrameRequest(session_id=session_id, frame=frame)
        got_code, details = await status_of(service.stub.PushFrame(request, metadata=A))
        assert (got_code, message in details) == (code, True), details
    after = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=A)
    assert after == before
    assert (await stored_record(service.store, session_id)).version == version
    # The session goes on from where it was.
    response = await service.stub.PushFrame(
        pb.PushFrameRequest(session_id=session_id, frame=png_frame(frames[2], 6)), metadata=A
    )
    assert response.result.frame_index == 2


async def test_a_retried_frame_gets_its_stored_result_and_is_applied_once(
    service: Service, frames: list[np.ndarray]
) -> None:
    session_id = (await start(service, frames[0])).session_id
    push = pb.PushFrameRequest(session_id=session_id, frame=png_frame(frames[1], 7))
    first = await service.stub.PushFrame(push, metadata=A)
    version = (await stored_record(service.store, session_id)).version
    before = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=A)

    retries = [await service.stub.PushFrame(push, metadata=A) for _ in range(2)]

    first.result.ClearField("timings")  # the only part measured anew
    for retry in retries:
        retry.result.ClearField("timings")
        assert retry.result == first.result
    after = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=A)
    assert after == before and after.frame_count == 2
    assert (await stored_record(service.store, session_id)).version == version


async def test_sessions_are_private_to_their_api_key(service: Service, frames: list[np.ndarray]) -> None:
    session_id = (await start(service, frames[0], key=A)).session_id
    calls = [
        service.stub.PushFrame(
            pb.PushFrameRequest(session_id=session_id, frame=png_frame(frames[1])), metadata=B
        ),
        service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=B),
        service.stub.StopTrack(pb.StopTrackRequest(session_id=session_id), metadata=B),
        service.stub.GetTrack(pb.GetTrackRequest(session_id="no-such-session"), metadata=A),
        service.stub.PushFrame(pb.PushFrameRequest(session_id="", frame=png_frame(frames[1])), metadata=A),
    ]
    for call in calls:
        assert (await status_of(call))[0] == CODE.NOT_FOUND
    listed_b = await service.stub.ListTracks(pb.ListTracksRequest(), metadata=B)
    assert session_id not in [session.session_id for session in listed_b.sessions]
    listed_a = await service.stub.ListTracks(pb.ListTracksRequest(), metadata=A)
    assert session_id in [session.session_id for session in listed_a.sessions]
    got = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=A)
    assert got.frame_count == 1  # B's push did not touch it


async def test_stop_then_not_found(service: Service, frames: list[np.ndarray]) -> None:
    options = pb.TrackerOptions(penalty_k=0.2, lost_after_frames=7)
    session_id = (await start(service, frames[0], options=options)).session_id
    stopped = await service.stub.StopTrack(pb.StopTrackRequest(session_id=session_id), metadata=A)
    assert stopped.session.tracker == TRACKER and stopped.session.frame_count == 1
    assert stopped.session.options.penalty_k == pytest.approx(0.2)
    assert stopped.session.options.lost_after_frames == 7
    assert stopped.session.options.window_influence == pytest.approx(0.40)  # package default in effect
    code, _ = await status_of(service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=A))
    assert code == CODE.NOT_FOUND


async def test_missing_or_unknown_api_key_is_unauthenticated(service: Service) -> None:
    request = pb.ListTracksRequest()
    for metadata in [(), auth("not-a-known-key-0000"), (("x-api-key", "wrong-key-0000000000"),)]:
        code, _ = await status_of(service.stub.ListTracks(request, metadata=metadata))
        assert code == CODE.UNAUTHENTICATED
    assert await service.stub.ListTracks(request, metadata=(("x-api-key", API_KEY_A),)) is not None


async def test_list_tracks_pages(service: Service, frames: list[np.ndarray]) -> None:
    key = auth(API_KEY_B)
    ids = {(await start(service, frames[0], key=key)).session_id for _ in range(3)}
    first = await service.stub.ListTracks(pb.ListTracksRequest(page_size=2), metadata=key)
    second = await service.stub.ListTracks(
        pb.ListTracksRequest(page_size=2, page_token=first.next_page_token), metadata=key
    )
    assert {s.session_id for s in [*first.sessions, *second.sessions]} == ids and not second.next_page_token
    # Tokens the service did not make: garbage, base64 that decodes to nothing, the plain base64 of a
    # session id (no digest), a cut or altered real token.
    bare = base64.urlsafe_b64encode(min(ids).encode()).decode()
    token = first.next_page_token
    for garbage in ("a", "AAAA", "page-2", bare, token[:-1], token[:-1] + ("0" if token[-1] != "0" else "1")):
        code, details = await status_of(
            service.stub.ListTracks(pb.ListTracksRequest(page_token=garbage), metadata=key)
        )
        assert (code, details.startswith("invalid page_token:")) == (CODE.INVALID_ARGUMENT, True), garbage
    for session_id in ids:
        await service.stub.StopTrack(pb.StopTrackRequest(session_id=session_id), metadata=key)


# 1 MiB: a refusal quoting it would exceed the 8 KiB of metadata a client accepts, and fail on the client.
HUGE = "x" * (1 << 20)


def refused_unquoted(field: str, details: str) -> bool:
    """Whether `details` refuses `field` as oversized, naming it without quoting its value."""
    return re.fullmatch(rf"{field} has \d+ characters; at most \d+ are accepted", details) is not None


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("StartTrack", pb.StartTrackRequest(tracker=HUGE), "tracker"),
        ("PushFrame", pb.PushFrameRequest(session_id=HUGE), "session_id"),
        ("StopTrack", pb.StopTrackRequest(session_id=HUGE), "session_id"),
        ("GetTrack", pb.GetTrackRequest(session_id=HUGE), "session_id"),
        ("ListTracks", pb.ListTracksRequest(page_token=HUGE), "page_token"),
        ("AttachCamera", pb.AttachCameraRequest(camera_id="lobby", url=f"rtsp://cam/{HUGE}"), "url"),
        ("DetachCamera", pb.DetachCameraRequest(camera_id=HUGE), "camera_id"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_oversized_strings_are_refused_without_being_echoed(
    service: Service, method: str, request_message, field: str
) -> None:
    code, details = await status_of(getattr(service.stub, method)(request_message, metadata=A))
    assert (code, refused_unquoted(field, details)) == (CODE.INVALID_ARGUMENT, True), details[:200]


async def test_oversized_strings_end_streams_without_being_echoed(service: Service, frames) -> None:
    watch = service.stub.WatchTrack(pb.WatchTrackRequest(camera_id="lobby", target_id=HUGE), metadata=A)
    code, details = await status_of(watch.read())
    assert (code, refused_unquoted("target_id", details)) == (CODE.INVALID_ARGUMENT, True), details[:200]
    track = service.stub.Track(metadata=A)
    start = pb.StartTrackRequest(tracker=HUGE, frame=png_frame(frames[0]), box=box_message(INIT_BOX))
    await track.write(pb.TrackRequest(start=start))
    code, details = await status_of(track.read())
    assert (code, refused_unquoted("tracker", details)) == (CODE.INVALID_ARGUMENT, True), details[:200]


async def test_track_stream_answers_in_order_and_stops_on_close(service: Service, frames) -> None:
    async def requests():
        start_request = pb.StartTrackRequest(
            tracker=TRACKER, frame=png_frame(frames[0], 10), box=box_message(INIT_BOX)
        )
        yield pb.TrackRequest(start=start_request)
        for number, frame in enumerate(frames[1:4], start=11):
            yield pb.TrackRequest(frame=png_frame(frame, number))

    responses = [response async for response in service.stub.Track(requests(), metadata=A)]
    assert [r.result.frame_index for r in responses] == [0, 1, 2, 3]
    assert [r.result.client_frame_number for r in responses] == [10, 11, 12, 13]
    session_id = responses[0].session_id
    assert all(r.session_id == session_id for r in responses)
    code, _ = await status_of(service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=A))
    assert code == CODE.NOT_FOUND  # the client's half-close stopped the session


async def test_track_stream_error_ends_the_stream_and_keeps_the_session(service: Service, frames) -> None:
    async def requests():
        start_request = pb.StartTrackRequest(
            tracker=TRACKER, frame=png_frame(frames[0], 1), box=box_message(INIT_BOX)
        )
        yield pb.TrackRequest(start=start_request)
        yield pb.TrackRequest(frame=png_frame(frames[1], 1))  # stale: same number as the start frame

    call = service.stub.Track(requests(), metadata=A)
    responses = []
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for response in call:
            responses.append(response)
    assert len(responses) == 1 and failure.value.code() == CODE.FAILED_PRECONDITION
    trailing = dict(await call.trailing_metadata())
    assert trailing["siamstream-session-id"] == responses[0].session_id
    kept = await service.stub.GetTrack(pb.GetTrackRequest(session_id=responses[0].session_id), metadata=A)
    assert kept.frame_count == 1


async def test_track_stream_must_start_with_start(service: Service, frames) -> None:
    async def requests():
        yield pb.TrackRequest(frame=png_frame(frames[0]))

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for _ in service.stub.Track(requests(), metadata=A):
            pass
    assert failure.value.code() == CODE.INVALID_ARGUMENT


async def test_health_and_reflection_need_no_key(service: Service) -> None:
    health = health_pb2_grpc.HealthStub(service.channel)
    for name in ("", "siamstream.v1.TrackingService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    # types-grpcio-reflection types this stub for a sync channel only and its method as `binascii.Incomplete`
    # (a stub bug); at runtime it takes the aio channel and makes aio calls.
    reflection_stub: Any = reflection_pb2_grpc.ServerReflectionStub
    reflection = reflection_stub(service.channel)

    async def ask():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for answer in reflection.ServerReflectionInfo(ask()):
        names = {s.name for s in answer.list_services_response.service}
        assert {"siamstream.v1.TrackingService", "grpc.health.v1.Health"} <= names
        break


async def test_metrics_endpoint_shows_stage_histograms(service: Service, frames) -> None:
    session_id = (await start(service, frames[0])).session_id
    await service.stub.PushFrame(
        pb.PushFrameRequest(session_id=session_id, frame=png_frame(frames[1])), metadata=A
    )
    await status_of(service.stub.GetTrack(pb.GetTrackRequest(session_id="missing"), metadata=A))
    url = f"http://127.0.0.1:{service.server.settings.metrics_port}/metrics"
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    for stage in ("decode", "crop", "inference", "postprocess", "store", "total"):
        assert f'siamstream_stage_seconds_count{{stage="{stage}",tracker="{TRACKER}"}}' in text
    assert 'siamstream_rpc_requests_total{code="NOT_FOUND",method="GetTrack"}' in text
    assert 'siamstream_rpc_requests_total{code="OK",method="PushFrame"}' in text
    assert 'siamstream_frames_total{code="OK",tracker="siamrpn_alex"}' in text
    assert 'siamstream_inference_batch_rows_count{stage="search",tracker="siamrpn_alex"}' in text
    assert "siamstream_sessions_active " in text
    assert session_id not in text


async def test_drain_finishes_calls_in_flight_then_refuses(
    package_dir: Path, frames, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The push's decode waits until the drain has begun, so the push is surely in flight meanwhile.
    decoding, drain_begun = threading.Event(), threading.Event()

    def decode_once_drain_begun(*args: Any) -> Any:
        decoding.set()
        drain_begun.wait(CALL_WAIT_S)
        return decode_frame(*args)

    async with running_service(package_dir) as running:
        health = health_pb2_grpc.HealthStub(running.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        session_id = (await start(running, frames[0])).session_id
        monkeypatch.setattr(sessions, "decode_frame", decode_once_drain_begun)
        request = pb.PushFrameRequest(session_id=session_id, frame=png_frame(frames[1]))
        in_flight = asyncio.ensure_future(running.stub.PushFrame(request, metadata=A))
        assert await asyncio.to_thread(decoding.wait, CALL_WAIT_S)
        drain = asyncio.ensure_future(running.server.drain(grace_s=10.0))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        drain_begun.set()
        watch.cancel()  # an open watcher would hold the drain for the whole grace period
        assert (await in_flight).result.frame_index == 1
        await asyncio.wait_for(drain, timeout=5.0)
        code, _ = await status_of(
            running.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=A)
        )
        assert code == CODE.UNAVAILABLE
