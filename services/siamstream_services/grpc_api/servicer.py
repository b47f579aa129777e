"""The `siamstream.v1.TrackingService` servicer: proto in, `SessionManager` call, proto out.

Every refusal is a `ServiceError` raised by the domain and reported here with its status code; anything
unexpected is logged with its traceback and reported as INTERNAL without details.

Track stream: requests are answered one by one, in order. An error on any message ends the stream with
that message's status (the response has no error field, and a response without a result would break the
one-answer-per-request rule). The session survives such an error until its idle TTL; its id travels in
the trailing metadata `siamstream-session-id` so the client can go on with PushFrame. When the client
half-closes, the session is stopped and the stream ends with OK.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import NoReturn, TypeVar

import grpc
from google.protobuf.message import Message
from grpc import aio

from siamstream_services.convert import (
    box_xywh,
    check_text_fields,
    frame_input,
    result_message,
    session_message,
    track_options,
)
from siamstream_services.core.errors import FailedPrecondition, InvalidArgument, ServiceError
from siamstream_services.core.sessions import SessionManager
from siamstream_services.core.state import FrameOutcome
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc

from .auth import current_owner
from .cameras import CameraApi

log = logging.getLogger(__name__)

SESSION_ID_METADATA = "siamstream-session-id"

T = TypeVar("T")


class TrackingServicer(pb_grpc.TrackingServiceServicer):
    """Maps the tracking API onto a `SessionManager`."""

    def __init__(
        self,
        manager: SessionManager,
        cameras: CameraApi | None = None,
        trackers: Sequence[pb.TrackerInfo] = (),
    ) -> None:
        self._manager = manager
        self._cameras = cameras
        self._trackers = tuple(trackers)

    async def StartTrack(
        self, request: pb.StartTrackRequest, context: aio.ServicerContext
    ) -> pb.StartTrackResponse:
        await _check_text(context, request)
        outcome = await _answer(context, self._start(request))
        return pb.StartTrackResponse(session_id=outcome.session_id, result=_result(outcome, request.frame))

    async def PushFrame(
        self, request: pb.PushFrameRequest, context: aio.ServicerContext
    ) -> pb.PushFrameResponse:
        await _check_text(context, request)
        outcome = await _answer(context, self._push(request.session_id, request.frame))
        return pb.PushFrameResponse(result=_result(outcome, request.frame))

    async def StopTrack(
        self, request: pb.StopTrackRequest, context: aio.ServicerContext
    ) -> pb.StopTrackResponse:
        await _check_text(context, request)
        view = await _answer(context, self._manager.stop(current_owner.get(), request.session_id))
        return pb.StopTrackResponse(session=session_message(view))

    async def GetTrack(self, request: pb.GetTrackRequest, context: aio.ServicerContext) -> pb.TrackSession:
        await _check_text(context, request)
        view = await _answer(context, self._manager.get(current_owner.get(), request.session_id))
        return session_message(view)

    async def ListTracks(
        self, request: pb.ListTracksRequest, context: aio.ServicerContext
    ) -> pb.ListTracksResponse:
        await _check_text(context, request)
        views, token = await _answer(
            context, self._manager.list(current_owner.get(), request.page_size, request.page_token)
        )
        return pb.ListTracksResponse(
            sessions=[session_message(view) for view in views], next_page_token=token
        )

    async def ListTrackers(
        self, request: pb.ListTrackersRequest, context: aio.ServicerContext
    ) -> pb.ListTrackersResponse:
        return pb.ListTrackersResponse(trackers=self._trackers)

    async def Track(
        self, request_iterator: AsyncIterator[pb.TrackRequest], context: aio.ServicerContext
    ) -> AsyncIterator[pb.TrackResponse]:
        session_id = ""
        async for request in request_iterator:
            await _check_text(context, request, session_id)
            kind = request.WhichOneof("request")
            if not session_id:
                if kind != "start":
                    await _abort(
                        context, InvalidArgument("the first message of a Track stream must be start")
                    )
                outcome = await _answer(context, self._start(request.start))
                session_id = outcome.session_id
                yield pb.TrackResponse(session_id=session_id, result=_result(outcome, request.start.frame))
                continue
            if kind != "frame":
                error = InvalidArgument("only the first message of a Track stream may be start; send frame")
                await _abort(context, error, session_id)
            outcome = await _answer(context, self._push(session_id, request.frame), session_id)
            yield pb.TrackResponse(session_id=session_id, result=_result(outcome, request.frame))
        if session_id:
            await _answer(context, self._manager.stop(current_owner.get(), session_id), session_id)

    async def AttachCamera(
        self, request: pb.AttachCameraRequest, context: aio.ServicerContext
    ) -> pb.AttachCameraResponse:
        await _check_text(context, request)
        cameras = await self._camera_api(context)
        return await _answer(context, cameras.attach(current_owner.get(), request))

    async def DetachCamera(
        self, request: pb.DetachCameraRequest, context: aio.ServicerContext
    ) -> pb.DetachCameraResponse:
        await _check_text(context, request)
        cameras = await self._camera_api(context)
        return await _answer(context, cameras.detach(current_owner.get(), request))

    async def ListCameras(
        self, request: pb.ListCamerasRequest, context: aio.ServicerContext
    ) -> pb.ListCamerasResponse:
        cameras = await self._camera_api(context)
        return await _answer(context, cameras.list(current_owner.get()))

    async def WatchTrack(
        self, request: pb.WatchTrackRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.CameraTrackResult]:
        await _check_text(context, request)
        cameras = await self._camera_api(context)
        # Closed with the stream, cancelled or not, so its Redis read ends with the call rather than later.
        async with contextlib.aclosing(cameras.watch(current_owner.get(), request)) as results:
            while True:
                result = await _answer(context, anext(results, None))
                if result is None:
                    return
                yield result

    async def _camera_api(self, context: aio.ServicerContext) -> CameraApi:
        if self._cameras is None:
            await _abort(context, FailedPrecondition("cameras need a Redis store (store_url redis://...)"))
        return self._cameras

    async def _start(self, request: pb.StartTrackRequest) -> FrameOutcome:
        return await self._manager.start(
            current_owner.get(),
            request.tracker,
            frame_input(request.frame),
            box_xywh(request),
            track_options(request.options),
        )

    async def _push(self, session_id: str, frame: pb.Frame) -> FrameOutcome:
        return await self._manager.push(current_owner.get(), session_id, frame_input(frame))


def _result(outcome: FrameOutcome, frame: pb.Frame) -> pb.TrackResult:
    return result_message(outcome.result, outcome.client_frame_number, outcome.timings, frame)


async def _answer(context: aio.ServicerContext, call: Awaitable[T], session_id: str = "") -> T:
    """The result of `call`, or the call's RPC aborted with the status of its error."""
    try:
        return await call
    except ServiceError as error:
        await _abort(context, error, session_id)
    except Exception:
        log.exception("unexpected error in %s", type(call).__name__)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")


async def _check_text(context: aio.ServicerContext, request: Message, session_id: str = "") -> None:
    """Abort the call with INVALID_ARGUMENT when a string field of `request` is over its bound."""
    try:
        check_text_fields(request)
    except InvalidArgument as error:
        await _abort(context, error, session_id)


async def _abort(context: aio.ServicerContext, error: ServiceError, session_id: str = "") -> NoReturn:
    metadata = ((SESSION_ID_METADATA, session_id),) if session_id else ()
    await context.abort(error.code, error.message, metadata)
