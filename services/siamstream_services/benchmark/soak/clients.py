"""The soak clients: each on its own channel runs the plans drawn for it against the service and records
every call's outcome, while one more polls the service's health."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc

from .plans import (
    BAD_INPUT_CODES,
    INVALID,
    BadInputPlan,
    DeadlinePlan,
    Plan,
    StreamPlan,
    TrackPlan,
    WatchPlan,
    plan_action,
)
from .processes import ServiceProcess
from .recorder import OK, Recorder

Code = grpc.StatusCode

# A normal call: 16 streams on 2 busy cores take seconds per frame, yet a hung server shows within it.
CALL_TIMEOUT_S = 30.0
# The whole of one Track stream (at most TRACK_MAX_MESSAGES frames, tracked one at a time).
STREAM_TIMEOUT_S = 120.0
HEALTH_POLL_S = 1.0
# A client that got UNAVAILABLE waits this long before its next action, so an outage is not hammered.
UNAVAILABLE_BACKOFF_S = 1.0
# A normal stream retries an UNAVAILABLE frame this often: longer than the default Redis outage.
UNAVAILABLE_RETRIES = 15
# Clients still in a call when the run ends get this long to finish it (every call has a deadline).
DRAIN_TIMEOUT_S = STREAM_TIMEOUT_S + 10.0
# The service refuses string fields over 256 characters.
LONG_ID_CHARS = 300
UNKNOWN_TRACKER = "no_such_tracker"
LIST_PAGE_SIZE = 100
LIST_PAGES_MAX = 50

Box = tuple[float, float, float, float]
Response = TypeVar("Response")
CANCELLED = frozenset({Code.CANCELLED})
# A session id that no session has (ids are 32 random hex digits).
ABSENT_SESSION = "0" * 32
JPEG_HEADER = b"\xff\xd8\xff\xe0"
GARBAGE_BYTES = 4096
# The box of each bad input of BAD_INPUT_CODES that is a box.
BAD_BOXES: dict[str, Box] = {
    "box outside the frame": (-5000.0, -5000.0, 50.0, 50.0),
    "negative box size": (100.0, 100.0, -40.0, 60.0),
    "huge box": (10.0, 10.0, 1e9, 1e9),
    "NaN box": (math.nan, 100.0, 50.0, 50.0),
    "infinite box": (100.0, 100.0, math.inf, 50.0),
}


def box_message(box: Box) -> pb.Box:
    x, y, w, h = box
    return pb.Box(x=x, y=y, width=w, height=h)


@dataclass(frozen=True)
class Material:
    """What the clients send: the tracker's name, pre-encoded JPEG frames and their ground-truth boxes
    (xywh image pixels)."""

    tracker: str
    jpegs: list[bytes]
    boxes: list[Box]

    def start(self, index: int, frame_number: int | None = None) -> pb.StartTrackRequest:
        """StartTrack on frame `index` with the target's true box."""
        frame = pb.Frame(encoded=self.jpegs[index], client_frame_number=frame_number)
        return pb.StartTrackRequest(tracker=self.tracker, frame=frame, box=box_message(self.boxes[index]))


def bad_input_call(stub: pb_grpc.TrackingServiceStub, material: Material, plan: BadInputPlan) -> Awaitable:
    """The call that sends `plan.case`: a StartTrack on a good frame and box with one thing wrong, or a
    call naming a session that does not exist, or a malformed request."""
    rng = random.Random(plan.noise_seed)
    jpeg = material.jpegs[plan.frame]
    unknown = rng.getrandbits(128).to_bytes(16, "big").hex()
    start = material.start(plan.frame)
    match plan.case:
        case "garbage bytes":
            start.frame.encoded = rng.randbytes(GARBAGE_BYTES)
        case "garbage JPEG":
            start.frame.encoded = JPEG_HEADER + rng.randbytes(GARBAGE_BYTES)
        case "truncated JPEG":
            start.frame.encoded = jpeg[: int(len(jpeg) * rng.uniform(0.1, 0.9))]
        case "empty frame":
            start.frame.ClearField("encoded")
        case "raw frame of the wrong size":
            height, width = 480, 640
            raw = pb.RawImage(
                data=rng.randbytes(GARBAGE_BYTES),
                width=width,
                height=height,
                pixel_format=pb.PIXEL_FORMAT_BGR8,
            )
            start.frame.raw.CopyFrom(raw)
        case name if name in BAD_BOXES:
            start.box.CopyFrom(box_message(BAD_BOXES[name]))
        case "option out of range":
            start.options.tracking_threshold = 2.0
        case "unknown tracker":
            start.tracker = UNKNOWN_TRACKER
        case "PushFrame to an unknown session":
            request = pb.PushFrameRequest(session_id=unknown, frame=pb.Frame(encoded=jpeg))
            return stub.PushFrame(request, timeout=CALL_TIMEOUT_S)
        case "GetTrack of an unknown session":
            return stub.GetTrack(pb.GetTrackRequest(session_id=unknown), timeout=CALL_TIMEOUT_S)
        case "StopTrack of an unknown session":
            return stub.StopTrack(pb.StopTrackRequest(session_id=unknown), timeout=CALL_TIMEOUT_S)
        case "session id over the length limit":
            long_id = pb.GetTrackRequest(session_id="x" * LONG_ID_CHARS)
            return stub.GetTrack(long_id, timeout=CALL_TIMEOUT_S)
        case "ListTracks page token not issued":
            return stub.ListTracks(pb.ListTracksRequest(page_token="not-a-token"), timeout=CALL_TIMEOUT_S)
        case "Track opening with a frame":
            return _track_opening_with_a_frame(stub, jpeg)
        case _:
            raise ValueError(f"unknown bad input {plan.case!r}")
    return stub.StartTrack(start, timeout=CALL_TIMEOUT_S)


async def _track_opening_with_a_frame(stub: pb_grpc.TrackingServiceStub, jpeg: bytes) -> object:
    call = stub.Track(timeout=CALL_TIMEOUT_S)
    try:
        await call.write(pb.TrackRequest(frame=pb.Frame(encoded=jpeg)))
        return await call.read()
    finally:
        call.cancel()


class Client:
    """One client on its own channel: runs plans and records the outcome of every call."""

    def __init__(self, channel: aio.Channel, material: Material, recorder: Recorder, stop: asyncio.Event):
        self.stub = pb_grpc.TrackingServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)
        self.material = material
        self.recorder = recorder
        self.stop = stop
        self.saw_unavailable = False

    async def run(self, plan: Plan) -> None:
        match plan:
            case StreamPlan():
                await self.stream(plan)
            case TrackPlan():
                await self.track(plan)
            case WatchPlan():
                await self.watch(plan)
            case DeadlinePlan():
                await self.deadline(plan)
            case BadInputPlan():
                expected = BAD_INPUT_CODES[plan.case]
                await self.call(f"bad: {plan.case}", bad_input_call(self.stub, self.material, plan), expected)

    async def call(
        self,
        kind: str,
        call: Awaitable[Response],
        expected: frozenset[Code],
        session_started: float | None = None,
    ) -> tuple[Code, Response | None]:
        """Await one call and record its status; the response, or None when it failed."""
        started = time.monotonic()
        try:
            response, code, message = await call, OK, ""
        except aio.AioRpcError as error:
            response, code, message = None, error.code(), error.details() or ""
        self._record(kind, code, expected, started, message, session_started)
        return code, response

    async def stream(self, plan: StreamPlan) -> None:
        """StartTrack, the pushes (an UNAVAILABLE one retried with its frame number), StopTrack."""
        started = time.monotonic()
        ok = frozenset({OK})
        start = self.stub.StartTrack(self.material.start(plan.first, plan.first), timeout=CALL_TIMEOUT_S)
        _, response = await self.call("stream StartTrack", start, ok)
        if response is None:  # failed, and recorded with its code
            return
        session_id = response.session_id
        for push in range(plan.pushes):
            if self.stop.is_set():
                break
            if push == plan.garbage_at:
                noise = random.Random(plan.noise_seed).randbytes(GARBAGE_BYTES)
                request = pb.PushFrameRequest(
                    session_id=session_id, frame=pb.Frame(encoded=JPEG_HEADER + noise)
                )
                kind = "stream PushFrame garbage JPEG"
                code, _ = await self.call(
                    kind, self.stub.PushFrame(request, timeout=CALL_TIMEOUT_S), INVALID, started
                )
                if code != Code.INVALID_ARGUMENT:
                    return
            index = plan.first + 1 + push
            frame = pb.Frame(encoded=self.material.jpegs[index], client_frame_number=index)
            if not await self.push(pb.PushFrameRequest(session_id=session_id, frame=frame), started):
                return
        stop = self.stub.StopTrack(pb.StopTrackRequest(session_id=session_id), timeout=CALL_TIMEOUT_S)
        await self.call("stream StopTrack", stop, ok, started)

    async def push(self, request: pb.PushFrameRequest, session_started: float) -> bool:
        """One frame of a normal stream; whether it was tracked. UNAVAILABLE is retried (the frame's number
        makes the retry exactly-once) every UNAVAILABLE_BACKOFF_S, up to UNAVAILABLE_RETRIES times: after the
        Redis restart, the retry finds the session gone (NOT_FOUND)."""
        kind = "stream PushFrame"
        for _ in range(UNAVAILABLE_RETRIES + 1):
            sent = time.perf_counter()
            call = self.stub.PushFrame(request, timeout=CALL_TIMEOUT_S)
            code, _ = await self.call(kind, call, frozenset({OK}), session_started)
            if code == OK:
                self.recorder.window().push_ms.append((time.perf_counter() - sent) * 1000.0)
                return True
            if code != Code.UNAVAILABLE or self.stop.is_set():
                return False
            kind = "stream PushFrame retried"
            await wait_for(self.stop, UNAVAILABLE_BACKOFF_S)
        return False

    async def track(self, plan: TrackPlan) -> None:
        """A Track stream written and read in lockstep, then cancelled (or half-closed)."""
        kind, expected = ("Track closed", frozenset({OK})) if plan.close else ("Track cancelled", CANCELLED)
        started = time.monotonic()
        call = self.stub.Track(timeout=STREAM_TIMEOUT_S)
        message = ""
        try:
            for number in range(plan.messages):
                if number == 0:
                    request = pb.TrackRequest(start=self.material.start(plan.first, frame_number=0))
                else:
                    frame = pb.Frame(
                        encoded=self.material.jpegs[plan.first + number], client_frame_number=number
                    )
                    request = pb.TrackRequest(frame=frame)
                await call.write(request)
                if number < plan.messages - 1 or plan.read_last or plan.close:
                    await call.read()
            if plan.close:
                await call.done_writing()
                await call.read()  # the end of the stream
                code = await call.code()
            else:
                code = Code.CANCELLED if call.cancel() else await call.code()
        except aio.AioRpcError as error:
            code, message = error.code(), error.details() or ""
        finally:
            call.cancel()
        self._record(kind, code, expected, started, message, started)

    async def watch(self, plan: WatchPlan) -> None:
        started = time.monotonic()
        call = self.health.Watch(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
        message = ""
        try:
            for _ in range(plan.reads):
                await call.read()
            code = Code.CANCELLED if call.cancel() else await call.code()
        except aio.AioRpcError as error:
            code, message = error.code(), error.details() or ""
        finally:
            call.cancel()
        self._record("health Watch cancelled", code, CANCELLED, started, message)

    async def deadline(self, plan: DeadlinePlan) -> None:
        late = Code.DEADLINE_EXCEEDED
        kind = f"deadline {plan.method}"
        match plan.method:
            case "ListTracks":
                call = self.stub.ListTracks(pb.ListTracksRequest(page_size=1), timeout=plan.deadline_s)
                await self.call(kind, call, frozenset({late, OK}))
            case "GetTrack":
                call = self.stub.GetTrack(
                    pb.GetTrackRequest(session_id=ABSENT_SESSION), timeout=plan.deadline_s
                )
                await self.call(kind, call, frozenset({late, Code.NOT_FOUND}))
            case "PushFrame":
                frame = pb.Frame(encoded=self.material.jpegs[plan.frame])
                request = pb.PushFrameRequest(session_id=ABSENT_SESSION, frame=frame)
                await self.call(
                    kind,
                    self.stub.PushFrame(request, timeout=plan.deadline_s),
                    frozenset({late, Code.NOT_FOUND}),
                )
            case "StartTrack":
                started = time.monotonic()
                call = self.stub.StartTrack(self.material.start(plan.frame), timeout=plan.deadline_s)
                _, response = await self.call(kind, call, frozenset({late, OK}))
                if response is not None:
                    stop = self.stub.StopTrack(
                        pb.StopTrackRequest(session_id=response.session_id), timeout=CALL_TIMEOUT_S
                    )
                    await self.call("deadline StopTrack", stop, frozenset({OK}), started)

    def _record(
        self,
        kind: str,
        code: Code,
        expected: frozenset[Code],
        started: float,
        message: str,
        session_started: float | None = None,
    ) -> None:
        self.saw_unavailable = self.saw_unavailable or code == Code.UNAVAILABLE
        self.recorder.record(kind, code, expected, started, message, session_started)


async def wait_for(event: asyncio.Event, timeout_s: float) -> None:
    """Return when `event` is set or after `timeout_s`, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(0.0, timeout_s))


async def client_loop(
    index: int, seed: int, target: str, material: Material, recorder: Recorder, stop: asyncio.Event
) -> None:
    """Client `index`: its seeded actions, one at a time, until `stop`."""
    rng = random.Random(f"{seed}:{index}")
    async with aio.insecure_channel(target) as channel:
        client = Client(channel, material, recorder, stop)
        while not stop.is_set():
            plan, think_s = plan_action(rng, len(material.jpegs))
            client.saw_unavailable = False
            try:
                await client.run(plan)
            except Exception as error:
                # Not a status (those are recorded as outcomes): a client-side failure such as grpc
                # refusing a write. Counted and shown, and the soak goes on, since it is itself a finding.
                recorder.client_error(type(plan).__name__, error)
            await wait_for(stop, think_s + (UNAVAILABLE_BACKOFF_S if client.saw_unavailable else 0.0))


async def poll_health(service: ServiceProcess, recorder: Recorder, stop: asyncio.Event) -> None:
    """A grpc.health.v1 Check every HEALTH_POLL_S; ends the run (sets `stop`) when the service exits."""
    async with aio.insecure_channel(service.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while not stop.is_set():
            if service.process.poll() is not None:
                recorder.event(f"service exited with {service.process.returncode}")
                stop.set()
                return
            recorder.health(await check_health(health))
            await wait_for(stop, HEALTH_POLL_S)


async def check_health(health: health_pb2_grpc.HealthStub, timeout_s: float = 1.0) -> str:
    """The overall status ("SERVING", ...) or the failed Check's status code name."""
    try:
        answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    except aio.AioRpcError as error:
        return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


async def count_sessions(target: str) -> int | str:
    """Sessions ListTracks shows at the end (anonymous owner); the status code name when it fails."""
    count, token = 0, ""
    async with aio.insecure_channel(target) as channel:
        stub = pb_grpc.TrackingServiceStub(channel)
        for _ in range(LIST_PAGES_MAX):
            try:
                page = await stub.ListTracks(
                    pb.ListTracksRequest(page_size=LIST_PAGE_SIZE, page_token=token), timeout=CALL_TIMEOUT_S
                )
            except aio.AioRpcError as error:
                return error.code().name
            count += len(page.sessions)
            token = page.next_page_token
            if not token:
                break
    return count
