"""Structured logs: every line a call writes names the call's session, as JSON or as text."""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import CameraDirectory, TargetSpec, camera_key
from siamstream_services.grpc_api.cameras import CameraApi
from siamstream_services.logs import LogFormat, bind_session_id, configure_logging, session_scope
from siamstream_services.store.record import owner_key_id
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.v1 import tracking_pb2 as pb
from tests.services.session_fixtures import (
    API_KEY_A,
    INIT_BOX,
    TRACKER,
    auth,
    box_message,
    moving_target_frames,
    png_frame,
    running_service,
    status_of,
)

RPC_LOGGER = "siamstream_services.grpc_api.rpc"
# How every text line begins (TEXT_FORMAT: time, level, logger).
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")
LogTo = Callable[[LogFormat, str], io.StringIO]


@pytest.fixture
def log_to() -> Iterator[LogTo]:
    """`log_to(format, level)` configures logging as the processes do, into a buffer it returns; the root
    logger's handlers and level (pytest's among them) come back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def configure(log_format: LogFormat, level_name: str) -> io.StringIO:
        buffer = io.StringIO()
        configure_logging(log_format, level_name, buffer)
        return buffer

    yield configure
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def test_json_lines_of_a_real_call_carry_its_session(package_dir: Path, log_to: LogTo) -> None:
    buffer = log_to("json", "DEBUG")
    frames = moving_target_frames(3)
    async with running_service(package_dir) as service:
        started = await service.stub.StartTrack(
            pb.StartTrackRequest(tracker=TRACKER, frame=png_frame(frames[0], 0), box=box_message(INIT_BOX)),
            metadata=auth(API_KEY_A),
        )
        for number in (1, 2):
            await service.stub.PushFrame(
                pb.PushFrameRequest(session_id=started.session_id, frame=png_frame(frames[number], number)),
                metadata=auth(API_KEY_A),
            )
        await service.stub.ListTrackers(pb.ListTrackersRequest(), metadata=auth(API_KEY_A))

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    calls = {
        line["rpc_method"].rsplit("/", 1)[-1]: line
        for line in lines
        if line["logger"] == RPC_LOGGER and "rpc_method" in line
    }
    session_id = started.session_id
    assert calls["StartTrack"]["session_id"] == session_id
    assert (calls["StartTrack"]["level"], calls["StartTrack"]["rpc_code"]) == ("INFO", "OK")
    # One line per frame: at DEBUG while frames are answered OK.
    pushes = [line for line in lines if line.get("rpc_method", "").endswith("/PushFrame")]
    assert [(line["level"], line["session_id"]) for line in pushes] == [("DEBUG", session_id)] * 2
    # A call that names no session carries none: the previous calls' do not leak into it.
    assert "session_id" not in calls["ListTrackers"]
    tracked = [line for line in lines if "frame_index" in line]
    assert [(line["frame_index"], line["session_id"]) for line in tracked] == [
        (0, session_id),
        (1, session_id),
        (2, session_id),
    ]
    assert [line["client_frame_number"] for line in tracked] == [0, 1, 2]
    assert tracked[0]["track_status"] == "tracking"  # a start frame's box is the client's
    assert all(line["level"] == "DEBUG" for line in tracked)


def test_text_lines_name_the_bound_session(log_to: LogTo) -> None:
    buffer = log_to("text", "INFO")
    log = logging.getLogger("siamstream_services.test")
    with session_scope():
        log.info("before the session is known")
        bind_session_id("0123abcd")
        log.info("while handling it")
        log.debug("below the level")
    log.info("after the call")

    first, second, third = buffer.getvalue().splitlines()
    assert first.endswith("siamstream_services.test: before the session is known")
    assert second.endswith("siamstream_services.test: while handling it session_id=0123abcd")
    assert third.endswith("after the call")


def test_text_lines_escape_a_session_id_that_could_break_them(log_to: LogTo) -> None:
    buffer = log_to("text", "INFO")
    log = logging.getLogger("siamstream_services.test")
    with session_scope():
        bind_session_id("0123\n2030-01-01 00:00:00,000 INFO forged: line")
        log.info("while handling it")

    (line,) = buffer.getvalue().splitlines()
    assert line.endswith("while handling it session_id='0123\\n2030-01-01 00:00:00,000 INFO forged: line'")


async def test_a_session_id_with_a_line_break_is_refused_and_forges_no_line(
    package_dir: Path, log_to: LogTo
) -> None:
    """A session id is the client's text: it used to be bound, and written unescaped, before the session
    was found, so that a line break in it started a log line of the client's making."""
    buffer = log_to("text", "DEBUG")
    forged = "2030-01-01 00:00:00,000 INFO siamstream_services.grpc_api.rpc: rpc method=/forged code=OK"
    session_id = f"0123abcd\n{forged}"
    frames = moving_target_frames(2)
    async with running_service(package_dir) as service:
        await service.stub.StartTrack(
            pb.StartTrackRequest(tracker=TRACKER, frame=png_frame(frames[0], 0), box=box_message(INIT_BOX)),
            metadata=auth(API_KEY_A),
        )
        refusals = [
            await status_of(
                service.stub.PushFrame(
                    pb.PushFrameRequest(session_id=session_id, frame=png_frame(frames[1], 1)),
                    metadata=auth(API_KEY_A),
                )
            ),
            await status_of(
                service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=auth(API_KEY_A))
            ),
            await status_of(
                service.stub.StopTrack(pb.StopTrackRequest(session_id=session_id), metadata=auth(API_KEY_A))
            ),
        ]

    assert [code for code, _ in refusals] == [grpc.StatusCode.NOT_FOUND] * 3
    lines = buffer.getvalue().splitlines()
    assert forged not in lines
    # Every line is one whole record, and no refused call's line names the id it was refused for.
    assert all(RECORD_START.match(line) for line in lines), lines
    refused = [line for line in lines if "code=NOT_FOUND" in line]
    assert [line.split(" ", 3)[2] for line in refused] == ["INFO"] * 3
    assert not any("session_id=" in line for line in refused)


async def test_each_session_a_detach_stops_has_its_own_lines(
    package_dir: Path, redis_server: RedisServer, log_to: LogTo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DetachCamera stops a session per target: each stop's lines name its session, and what the call logs
    afterwards (its own line among them) none of them."""
    buffer = log_to("json", "INFO")
    settings = IngestSettings(key_prefix=f"logs-{uuid.uuid4().hex}:")
    directory = CameraDirectory.from_url(redis_server.url, settings)
    owner = owner_key_id(API_KEY_A)
    frame = png_frame(moving_target_frames(1)[0], 0)
    async with running_service(package_dir) as service:
        sessions = [
            (
                await service.stub.StartTrack(
                    pb.StartTrackRequest(tracker=TRACKER, frame=frame, box=box_message(INIT_BOX)),
                    metadata=auth(API_KEY_A),
                )
            ).session_id
            for _ in range(2)
        ]
        spec = TargetSpec(target_id="", tracker=TRACKER, box=INIT_BOX, anchor_unix=time.time())
        for session_id in sessions:
            target_id = await directory.attach(owner, "door", "rtsp://192.0.2.20:8554/live", spec)
            await directory.set_session(camera_key(owner, "door"), target_id, session_id)
        store = service.store
        delete = store.delete
        log = logging.getLogger("siamstream_services.test")

        async def logged_delete(session_id: str) -> bool:
            log.info("deleting %s", session_id)
            return await delete(session_id)

        monkeypatch.setattr(store, "delete", logged_delete)
        api = CameraApi(directory, service.server.manager)
        try:
            with session_scope():
                await api.detach(owner, pb.DetachCameraRequest(camera_id="door"))
                log.info("detached")
        finally:
            api.close()
            await directory.aclose()

    lines = [
        json.loads(line) for line in buffer.getvalue().splitlines() if "siamstream_services.test" in line
    ]
    deleting = [line for line in lines if line["message"].startswith("deleting")]
    assert sorted((line["message"], line["session_id"]) for line in deleting) == sorted(
        (f"deleting {session_id}", session_id) for session_id in sessions
    )
    assert [line.get("session_id") for line in lines if line["message"] == "detached"] == [None]
