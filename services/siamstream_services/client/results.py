"""What the client returns: the service's answers as plain dataclasses instead of protobuf messages.

Boxes are xywh in image pixels (top-left, width, height), times are milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypedDict, TypeVar

import numpy as np

from siamstream.tracking.state import TrackResult, TrackStatus
from siamstream_services.v1 import tracking_pb2 as pb

STATUSES = {
    pb.TRACK_STATUS_TRACKING: TrackStatus.TRACKING,
    pb.TRACK_STATUS_UNCERTAIN: TrackStatus.UNCERTAIN,
    pb.TRACK_STATUS_LOST: TrackStatus.LOST,
}
STAGE_FIELDS = ("decode_ms", "crop_ms", "inference_ms", "postprocess_ms", "store_ms", "total_ms")
# A frame as the caller hands it to the client: a BGR uint8 array or the bytes of an encoded image.
FrameT = TypeVar("FrameT", bound=np.ndarray | bytes)


class TrackerOptionFields(TypedDict, total=False):
    """The fields of `TrackerOptions` (tracking.proto) a start sets; an absent one keeps the tracker's value.

    Typed so that a misspelt option or a wrong type fails the type check, not the call.
    """

    penalty_k: float
    window_influence: float
    lr: float
    template_update: bool
    tracking_threshold: float
    lost_threshold: float
    lost_after_frames: int
    one_more_search: bool
    adaptive_region: bool
    long_term: bool


@dataclass(frozen=True)
class FrameResult:
    """The service's answer for one frame.

    `server_ms` maps each stage of `StageTimings` (`decode_ms` ... `total_ms`) to the server's wall time;
    it is empty for results read back with `get`/`stop`. `round_trip_ms` is the client's wall time from
    sending the frame to receiving this answer (None when the result was not pushed by this client).
    """

    frame_index: int
    box: tuple[float, float, float, float]
    score: float
    status: TrackStatus
    client_frame_number: int | None
    server_ms: dict[str, float]
    round_trip_ms: float | None = None

    @classmethod
    def from_message(cls, message: pb.TrackResult, round_trip_ms: float | None = None) -> FrameResult:
        box = message.box
        timings = message.timings if message.HasField("timings") else None
        return cls(
            frame_index=message.frame_index,
            box=(box.x, box.y, box.width, box.height),
            score=message.score,
            status=STATUSES[message.status],
            client_frame_number=(
                message.client_frame_number if message.HasField("client_frame_number") else None
            ),
            server_ms={name: getattr(timings, name) for name in STAGE_FIELDS} if timings else {},
            round_trip_ms=round_trip_ms,
        )

    def track_result(self) -> TrackResult:
        """The library's `TrackResult` (for `AnnotatedVideoWriter`, result.json); no score on frame 0.

        The start frame carries the given box with score 1 by the API's convention; the offline tracker
        reports no score there, and so does this.
        """
        return TrackResult(
            frame_index=self.frame_index,
            bbox=self.box,
            score=None if self.frame_index == 0 else self.score,
            status=self.status,
        )


@dataclass(frozen=True)
class StartedTrack:
    """A new session and the result of its start frame."""

    session_id: str
    result: FrameResult


@dataclass(frozen=True)
class StreamedFrame(Generic[FrameT]):
    """One answer of a `Track` stream, with the frame it answers (as it was given to the client)."""

    session_id: str
    frame: FrameT
    result: FrameResult


@dataclass(frozen=True)
class SessionInfo:
    """A session as the server stores it; `options` are the tracker options in effect."""

    session_id: str
    tracker: str
    frame_count: int
    options: dict[str, float | int | bool]
    last_result: FrameResult

    @classmethod
    def from_message(cls, message: pb.TrackSession) -> SessionInfo:
        return cls(
            session_id=message.session_id,
            tracker=message.tracker,
            frame_count=message.frame_count,
            options={field.name: value for field, value in message.options.ListFields()},
            last_result=FrameResult.from_message(message.last_result),
        )


@dataclass(frozen=True)
class HostedTracker:
    """A tracker the service hosts (ListTrackers): crop sides in pixels, `weights_sha256` empty for
    random weights; `template_update`, `adaptive_region` and `long_term` say whether StartTrack accepts
    those options (the package was exported with them)."""

    name: str
    family: str
    description: str
    template_size: int
    search_size: int
    precision: str
    inference_backend: str
    package_id: str
    weights_sha256: str
    template_update: bool
    adaptive_region: bool
    long_term: bool
    search_sides: tuple[int, ...]

    @classmethod
    def from_message(cls, message: pb.TrackerInfo) -> HostedTracker:
        return cls(
            name=message.name,
            family=message.family,
            description=message.description,
            template_size=message.template_size,
            search_size=message.search_size,
            precision=message.precision,
            inference_backend=message.inference_backend,
            package_id=message.package_id,
            weights_sha256=message.weights_sha256,
            template_update=message.template_update,
            adaptive_region=message.adaptive_region,
            long_term=message.long_term,
            search_sides=tuple(message.search_sides),
        )
