"""Mapping between the `siamstream.v1` messages and the domain (frames, boxes, options, results, trackers).

Shared by the two sides that speak the wire format: the gRPC API (`siamstream_services.grpc_api`), which
turns requests into calls on the session core and its answers into responses, and the camera worker
(`siamstream_services.ingest`), which publishes its results as `CameraTrackResult` messages. It is no part
of either, so neither imports the other for it.
"""

from __future__ import annotations

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from siamstream.tracking.search_options import search_sides
from siamstream.tracking.state import TrackResult, TrackStatus
from siamstream.tracking.validation import check_box_values
from siamstream_services.cameras.urls import MAX_URL_LENGTH
from siamstream_services.core.errors import InvalidArgument
from siamstream_services.core.frames import EncodedImage, PixelFormat, RawImage
from siamstream_services.core.options import TrackOptions
from siamstream_services.core.sessions import FrameInput, ServedTracker
from siamstream_services.core.state import SessionView
from siamstream_services.core.timings import StageTimings
from siamstream_services.settings import InferenceBackendSetting
from siamstream_services.v1 import tracking_pb2 as pb

PIXEL_FORMATS = {
    pb.PIXEL_FORMAT_BGR8: PixelFormat.BGR8,
    pb.PIXEL_FORMAT_RGB8: PixelFormat.RGB8,
    pb.PIXEL_FORMAT_GRAY8: PixelFormat.GRAY8,
}
STATUSES = {
    TrackStatus.TRACKING: pb.TRACK_STATUS_TRACKING,
    TrackStatus.UNCERTAIN: pb.TRACK_STATUS_UNCERTAIN,
    TrackStatus.LOST: pb.TRACK_STATUS_LOST,
}


# Session ids are 32 characters, tracker names and camera and target ids shorter still: 256 leaves room
# for any. A refusal quoting a longer value would not reach the client: status details travel in
# metadata, which clients cap at 8 KiB.
MAX_TEXT_CHARS = 256
# A camera URL carries a path and may carry credentials and a query: longer than a name, still bounded.
MAX_TEXT_CHARS_BY_FIELD = {"url": MAX_URL_LENGTH}


def check_text_fields(request: Message) -> None:
    """Refuse a request with a string field, its nested messages' included, over its bound (`MAX_TEXT_CHARS`,
    or the field's own in `MAX_TEXT_CHARS_BY_FIELD`): `InvalidArgument` naming the field, not quoting it."""
    for field, value in request.ListFields():
        if isinstance(value, Message):
            check_text_fields(value)
        elif isinstance(value, str):
            limit = MAX_TEXT_CHARS_BY_FIELD.get(field.name, MAX_TEXT_CHARS)
            if len(value) > limit:
                raise InvalidArgument(
                    f"{field.name} has {len(value)} characters; at most {limit} are accepted"
                )


def frame_input(frame: pb.Frame) -> FrameInput:
    """The domain frame of a request; a frame without an image is `InvalidArgument`."""
    kind = frame.WhichOneof("image")
    if kind == "encoded":
        image: EncodedImage | RawImage = EncodedImage(frame.encoded)
    elif kind == "raw":
        raw = frame.raw
        image = RawImage(raw.data, raw.width, raw.height, PIXEL_FORMATS.get(raw.pixel_format))
    else:
        raise InvalidArgument("frame is empty: set frame.encoded or frame.raw")
    number = frame.client_frame_number if frame.HasField("client_frame_number") else None
    return FrameInput(image=image, client_frame_number=number)


def box_xywh(request: pb.StartTrackRequest | pb.AttachCameraRequest) -> tuple[float, float, float, float]:
    """The request's box (image px), with the checks that need no frame (`check_box_values`); the frame's
    own checks come when the session starts on it."""
    if not request.HasField("box"):
        raise InvalidArgument("box is required")
    box = request.box
    try:
        return check_box_values((box.x, box.y, box.width, box.height))
    except ValueError as error:
        raise InvalidArgument(f"invalid box: {error}") from None


def track_options(options: pb.TrackerOptions) -> TrackOptions:
    """The overrides set in `options` (unset fields keep the tracker's values)."""
    return TrackOptions.parse({field.name: value for field, value in options.ListFields()})


def options_message(options: TrackOptions) -> pb.TrackerOptions:
    return pb.TrackerOptions(**options.model_dump(exclude_none=True))


def result_message(
    result: TrackResult, client_frame_number: int | None, timings: StageTimings | None, frame: pb.Frame | None
) -> pb.TrackResult:
    """A result; `frame` is the request's frame, whose capture time is echoed."""
    x, y, w, h = result.bbox
    message = pb.TrackResult(
        box=pb.Box(x=x, y=y, width=w, height=h),
        score=result.score if result.score is not None else 0.0,
        status=STATUSES[result.status],
        frame_index=result.frame_index,
        client_frame_number=client_frame_number,
    )
    if frame is not None and frame.HasField("capture_time"):
        message.capture_time.CopyFrom(frame.capture_time)
    if timings is not None:
        message.timings.CopyFrom(
            pb.StageTimings(
                decode_ms=timings.decode,
                crop_ms=timings.crop,
                inference_ms=timings.inference,
                postprocess_ms=timings.postprocess,
                store_ms=timings.store,
                total_ms=timings.total,
            )
        )
    return message


def session_message(view: SessionView) -> pb.TrackSession:
    return pb.TrackSession(
        session_id=view.session_id,
        tracker=view.tracker,
        options=options_message(view.options),
        create_time=_timestamp(view.created_at),
        update_time=_timestamp(view.updated_at),
        frame_count=view.frame_count,
        last_result=result_message(view.last_result, view.last_result_client_frame, None, None),
    )


def _timestamp(unix_seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(unix_seconds * 1e9))
    return stamp


def tracker_infos(
    trackers: dict[str, ServedTracker], inference_backend: InferenceBackendSetting
) -> list[pb.TrackerInfo]:
    """ListTrackers' answer: the served trackers by name; `inference_backend` is the settings' value
    (only its kind is told: the model server's address is the deployment's business). The options a
    package must have been exported with are told, so a client knows which StartTrack accepts."""
    backend = inference_backend.kind
    return [
        pb.TrackerInfo(
            name=name,
            family=served.config.family.value,
            description=served.config.description,
            template_size=served.config.crop.exemplar_size,
            search_size=served.config.crop.instance_size,
            precision=served.precision.value,
            inference_backend=backend,
            package_id=served.package_id,
            weights_sha256=served.weights_sha256,
            template_update=served.template_update,
            adaptive_region=served.config.search.adaptive_region,
            long_term=served.config.long_term.enabled,
            search_sides=search_sides(served.config),
        )
        for name, served in sorted(trackers.items())
    ]
