"""Structured logs: every line a call writes names the call's session, as JSON or as text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siamstream_services.logs import LogFormat, bind_session_id, call_scope, configure_logging
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
)

RPC_LOGGER = "siamstream_services.grpc_api.rpc"
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
    with call_scope():
        log.info("before the session is known")
        bind_session_id("0123abcd")
        log.info("while handling it")
        log.debug("below the level")
    log.info("after the call")

    first, second, third = buffer.getvalue().splitlines()
    assert first.endswith("siamstream_services.test: before the session is known")
    assert second.endswith("siamstream_services.test: while handling it session_id=0123abcd")
    assert third.endswith("after the call")
