"""`TrackingClient`: asyncio calls of the `siamstream.v1.TrackingService` over one gRPC channel.

Frames are BGR uint8 numpy arrays (encoded here as JPEG or PNG) or bytes of an already encoded JPEG, PNG
or WebP file, sent as they are. Boxes are xywh in image pixels. Failed calls raise `grpc.aio.AioRpcError`
with the service's status code and message (see the proto for the codes).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from types import TracebackType

import grpc
import numpy as np
from grpc import aio

from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc

from .frames import DEFAULT_JPEG_QUALITY, ImageFormat, encode_frame
from .in_flight import InFlightFrames
from .results import (
    FrameResult,
    FrameT,
    HostedTracker,
    SessionInfo,
    StartedTrack,
    StreamedFrame,
    TrackerOptionFields,
)

Frame = np.ndarray | bytes
# Long enough for a start (template stage) on a loaded CPU server, short enough to notice a hung one.
DEFAULT_TIMEOUT_S = 10.0
# Frames a Track stream may have sent but not yet had answered: enough to hide one round trip behind
# the server's work on the previous frame, few enough that results stay close to live.
DEFAULT_MAX_IN_FLIGHT = 4


class TrackingClient:
    """A client of one tracking service; use as `async with TrackingClient(...) as client`.

    `target` is `HOST:PORT`. `api_key` is sent as `authorization: Bearer KEY`. The channel uses TLS when
    `tls` is true or a certificate is given: `root_certificates` (PEM) verifies the server (default: the
    system's roots), `certificate_chain` and `private_key` (PEM) authenticate the client for mutual TLS.
    Numpy frames are sent as `image_format` (JPEG at `jpeg_quality`, or lossless PNG).
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        image_format: ImageFormat = ImageFormat.JPEG,
        jpeg_quality: int = DEFAULT_JPEG_QUALITY,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.target = target
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.timeout_s = timeout_s
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        if tls or root_certificates or certificate_chain:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = aio.secure_channel(target, credentials)
        else:
            self._channel = aio.insecure_channel(target)
        self._stub = pb_grpc.TrackingServiceStub(self._channel)

    async def __aenter__(self) -> TrackingClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls still running are cancelled."""
        await self._channel.close()

    async def start(
        self,
        frame: Frame,
        box: Sequence[float],
        tracker: str,
        options: TrackerOptionFields | None = None,
        client_frame_number: int | None = None,
    ) -> StartedTrack:
        """Start a session on `frame` with the target at `box`; `options` are `TrackerOptions` fields."""
        request = await self._start_request(frame, box, tracker, options, client_frame_number)
        sent = time.perf_counter()
        response = await self._stub.StartTrack(request, metadata=self._metadata, timeout=self.timeout_s)
        return StartedTrack(response.session_id, FrameResult.from_message(response.result, _since(sent)))

    async def push(
        self, session_id: str, frame: Frame, client_frame_number: int | None = None
    ) -> FrameResult:
        """Track the session's target into `frame` (one `PushFrame` call)."""
        message = await self._frame_message(frame, client_frame_number)
        request = pb.PushFrameRequest(session_id=session_id, frame=message)
        sent = time.perf_counter()
        response = await self._stub.PushFrame(request, metadata=self._metadata, timeout=self.timeout_s)
        return FrameResult.from_message(response.result, _since(sent))

    async def stop(self, session_id: str) -> SessionInfo:
        """Stop the session; returns it as it was when stopped."""
        request = pb.StopTrackRequest(session_id=session_id)
        response = await self._stub.StopTrack(request, metadata=self._metadata, timeout=self.timeout_s)
        return SessionInfo.from_message(response.session)

    async def get(self, session_id: str) -> SessionInfo:
        request = pb.GetTrackRequest(session_id=session_id)
        response = await self._stub.GetTrack(request, metadata=self._metadata, timeout=self.timeout_s)
        return SessionInfo.from_message(response)

    async def list(self, page_size: int = 0) -> list[SessionInfo]:
        """Every session of this client's API key, reading all pages of `page_size` (0: server default)."""
        sessions: list[SessionInfo] = []
        token = ""
        while True:
            request = pb.ListTracksRequest(page_size=page_size, page_token=token)
            page = await self._stub.ListTracks(request, metadata=self._metadata, timeout=self.timeout_s)
            sessions.extend(SessionInfo.from_message(message) for message in page.sessions)
            token = page.next_page_token
            if not token:
                return sessions

    # builtins.list: `list` in this class body is the method above.
    async def trackers(self) -> builtins.list[HostedTracker]:
        """The trackers the service hosts, ordered by name (one ListTrackers call)."""
        request = pb.ListTrackersRequest()
        response = await self._stub.ListTrackers(request, metadata=self._metadata, timeout=self.timeout_s)
        return [HostedTracker.from_message(message) for message in response.trackers]

    async def check_access(self) -> None:
        """Raise the service's error (UNAVAILABLE, UNAUTHENTICATED...) unless it answers this API key.

        One cheap call (a one-item ListTracks): run it before a `track_stream` to get the real status of
        a bad key or address, which the stream itself may report as INTERNAL (see `track_stream`).
        """
        request = pb.ListTracksRequest(page_size=1)
        await self._stub.ListTracks(request, metadata=self._metadata, timeout=self.timeout_s)

    async def track_stream(
        self,
        frames: Iterable[FrameT] | AsyncIterable[FrameT],
        box: Sequence[float],
        tracker: str,
        options: TrackerOptionFields | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        answer_timeout_s: float | None = None,
    ) -> AsyncIterator[StreamedFrame[FrameT]]:
        """Track through `frames` on one `Track` stream: frame 0 starts at `box`; answers come in order.

        At most `max_in_flight` frames are sent ahead of their answers (1 = lockstep), so a slow server
        holds the reading of `frames` back instead of queueing without bound. Frames carry their index as
        `client_frame_number`. When `frames` ends, the server answers the rest and stops the session.
        `round_trip_ms` runs from handing a frame to gRPC to its answer, so it includes the wait behind
        the frames sent before it.

        A server that stops answering ends the stream with `grpc.aio.AioRpcError` DEADLINE_EXCEEDED
        ("no answer to frame N within T s"): each answer, and the end of the stream after the last frame,
        is awaited at most `answer_timeout_s` (default: the client's `timeout_s`). Time without a frame in
        flight, waiting on `frames`, is not bounded. An answer that arrives with no frame in flight ends
        it with INTERNAL ("the server answered with no frame in flight").

        grpcio's asyncio client may report a status with which the server ended the stream as INTERNAL
        "Internal error from Core" when a frame was still being written at that moment (grpc/grpc#36066):
        with `max_in_flight=1` that can only happen to the start message, which the server refuses
        unread when the API key is wrong; `check_access` first gives the real status.
        """
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        slots = asyncio.Semaphore(max_in_flight)
        timeout_s = self.timeout_s if answer_timeout_s is None else answer_timeout_s
        in_flight: InFlightFrames[FrameT] = InFlightFrames(timeout_s)

        # A failing frame source (an unreadable frame, a camera gone) half-closes the stream instead of
        # raising into gRPC, which would cancel the call and hide the error: the frames already sent
        # are answered first, then the source's error is raised here.
        request_errors: list[Exception] = []

        async def requests() -> AsyncIterator[pb.TrackRequest]:
            number = 0
            try:
                async for frame in _as_async(frames):
                    await slots.acquire()
                    if number == 0:
                        start = await self._start_request(frame, box, tracker, options, number)
                        request = pb.TrackRequest(start=start)
                    else:
                        request = pb.TrackRequest(frame=await self._frame_message(frame, number))
                    in_flight.sent(frame)
                    number += 1
                    yield request
            except Exception as error:
                request_errors.append(error)
            in_flight.all_sent()

        call = self._stub.Track(requests(), metadata=self._metadata)
        answers = aiter(call)
        try:
            while (response := await in_flight.next_answer(answers)) is not None:
                frame, round_trip_ms = in_flight.answered()
                slots.release()
                result = FrameResult.from_message(response.result, round_trip_ms)
                yield StreamedFrame(response.session_id, frame, result)
        finally:
            # A consumer that stops early ends the stream; the session then expires on the server.
            call.cancel()
        if request_errors:
            raise request_errors[0]

    async def _start_request(
        self,
        frame: Frame,
        box: Sequence[float],
        tracker: str,
        options: TrackerOptionFields | None,
        client_frame_number: int | None,
    ) -> pb.StartTrackRequest:
        x, y, w, h = (float(value) for value in box)
        return pb.StartTrackRequest(
            tracker=tracker,
            frame=await self._frame_message(frame, client_frame_number),
            box=pb.Box(x=x, y=y, width=w, height=h),
            options=pb.TrackerOptions(**(options or {})),
        )

    async def _frame_message(self, frame: Frame, client_frame_number: int | None) -> pb.Frame:
        if isinstance(frame, bytes):
            data = frame
        else:
            # Off the event loop: OpenCV releases the GIL, so encoding overlaps the calls in flight.
            data = await asyncio.to_thread(encode_frame, frame, self.image_format, self.jpeg_quality)
        return pb.Frame(encoded=data, client_frame_number=client_frame_number)


async def _as_async(frames: Iterable[FrameT] | AsyncIterable[FrameT]) -> AsyncIterator[FrameT]:
    if isinstance(frames, AsyncIterable):
        async for frame in frames:
            yield frame
    else:
        for frame in frames:
            yield frame


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
