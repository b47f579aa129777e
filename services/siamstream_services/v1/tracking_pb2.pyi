import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CameraState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMERA_STATE_UNSPECIFIED: _ClassVar[CameraState]
    CAMERA_STATE_CONNECTING: _ClassVar[CameraState]
    CAMERA_STATE_STREAMING: _ClassVar[CameraState]
    CAMERA_STATE_STALE: _ClassVar[CameraState]
    CAMERA_STATE_RECONNECTING: _ClassVar[CameraState]
    CAMERA_STATE_STOPPED: _ClassVar[CameraState]

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGR8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_GRAY8: _ClassVar[PixelFormat]

class TrackStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRACK_STATUS_UNSPECIFIED: _ClassVar[TrackStatus]
    TRACK_STATUS_TRACKING: _ClassVar[TrackStatus]
    TRACK_STATUS_UNCERTAIN: _ClassVar[TrackStatus]
    TRACK_STATUS_LOST: _ClassVar[TrackStatus]
CAMERA_STATE_UNSPECIFIED: CameraState
CAMERA_STATE_CONNECTING: CameraState
CAMERA_STATE_STREAMING: CameraState
CAMERA_STATE_STALE: CameraState
CAMERA_STATE_RECONNECTING: CameraState
CAMERA_STATE_STOPPED: CameraState
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_BGR8: PixelFormat
PIXEL_FORMAT_RGB8: PixelFormat
PIXEL_FORMAT_GRAY8: PixelFormat
TRACK_STATUS_UNSPECIFIED: TrackStatus
TRACK_STATUS_TRACKING: TrackStatus
TRACK_STATUS_UNCERTAIN: TrackStatus
TRACK_STATUS_LOST: TrackStatus

class AttachCameraRequest(_message.Message):
    __slots__ = ("camera_id", "url", "box", "tracker", "options", "box_time")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    BOX_TIME_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    url: str
    box: Box
    tracker: str
    options: TrackerOptions
    box_time: _timestamp_pb2.Timestamp
    def __init__(self, camera_id: _Optional[str] = ..., url: _Optional[str] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., tracker: _Optional[str] = ..., options: _Optional[_Union[TrackerOptions, _Mapping]] = ..., box_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AttachCameraResponse(_message.Message):
    __slots__ = ("camera_id", "target_id")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    target_id: str
    def __init__(self, camera_id: _Optional[str] = ..., target_id: _Optional[str] = ...) -> None: ...

class DetachCameraRequest(_message.Message):
    __slots__ = ("camera_id", "target_id")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    target_id: str
    def __init__(self, camera_id: _Optional[str] = ..., target_id: _Optional[str] = ...) -> None: ...

class DetachCameraResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCamerasRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CameraTarget(_message.Message):
    __slots__ = ("target_id", "tracker", "session_id")
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    target_id: str
    tracker: str
    session_id: str
    def __init__(self, target_id: _Optional[str] = ..., tracker: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class Camera(_message.Message):
    __slots__ = ("camera_id", "url", "state", "worker_id", "reconnects", "last_frame_time", "targets")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_TIME_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    url: str
    state: CameraState
    worker_id: str
    reconnects: int
    last_frame_time: _timestamp_pb2.Timestamp
    targets: _containers.RepeatedCompositeFieldContainer[CameraTarget]
    def __init__(self, camera_id: _Optional[str] = ..., url: _Optional[str] = ..., state: _Optional[_Union[CameraState, str]] = ..., worker_id: _Optional[str] = ..., reconnects: _Optional[int] = ..., last_frame_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., targets: _Optional[_Iterable[_Union[CameraTarget, _Mapping]]] = ...) -> None: ...

class ListCamerasResponse(_message.Message):
    __slots__ = ("cameras",)
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    cameras: _containers.RepeatedCompositeFieldContainer[Camera]
    def __init__(self, cameras: _Optional[_Iterable[_Union[Camera, _Mapping]]] = ...) -> None: ...

class WatchTrackRequest(_message.Message):
    __slots__ = ("camera_id", "target_id")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    target_id: str
    def __init__(self, camera_id: _Optional[str] = ..., target_id: _Optional[str] = ...) -> None: ...

class CameraTrackResult(_message.Message):
    __slots__ = ("camera_id", "target_id", "session_id", "result")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    target_id: str
    session_id: str
    result: TrackResult
    def __init__(self, camera_id: _Optional[str] = ..., target_id: _Optional[str] = ..., session_id: _Optional[str] = ..., result: _Optional[_Union[TrackResult, _Mapping]] = ...) -> None: ...

class RawImage(_message.Message):
    __slots__ = ("data", "width", "height", "pixel_format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PIXEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    width: int
    height: int
    pixel_format: PixelFormat
    def __init__(self, data: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., pixel_format: _Optional[_Union[PixelFormat, str]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("encoded", "raw", "client_frame_number", "capture_time")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawImage
    client_frame_number: int
    capture_time: _timestamp_pb2.Timestamp
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ..., client_frame_number: _Optional[int] = ..., capture_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    width: float
    height: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., width: _Optional[float] = ..., height: _Optional[float] = ...) -> None: ...

class TrackerOptions(_message.Message):
    __slots__ = ("penalty_k", "window_influence", "lr", "template_update", "tracking_threshold", "lost_threshold", "lost_after_frames", "one_more_search", "adaptive_region", "long_term")
    PENALTY_K_FIELD_NUMBER: _ClassVar[int]
    WINDOW_INFLUENCE_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_UPDATE_FIELD_NUMBER: _ClassVar[int]
    TRACKING_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LOST_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LOST_AFTER_FRAMES_FIELD_NUMBER: _ClassVar[int]
    ONE_MORE_SEARCH_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_REGION_FIELD_NUMBER: _ClassVar[int]
    LONG_TERM_FIELD_NUMBER: _ClassVar[int]
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
    def __init__(self, penalty_k: _Optional[float] = ..., window_influence: _Optional[float] = ..., lr: _Optional[float] = ..., template_update: _Optional[bool] = ..., tracking_threshold: _Optional[float] = ..., lost_threshold: _Optional[float] = ..., lost_after_frames: _Optional[int] = ..., one_more_search: _Optional[bool] = ..., adaptive_region: _Optional[bool] = ..., long_term: _Optional[bool] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("decode_ms", "crop_ms", "inference_ms", "postprocess_ms", "store_ms", "total_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    CROP_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    STORE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    crop_ms: float
    inference_ms: float
    postprocess_ms: float
    store_ms: float
    total_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., crop_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., postprocess_ms: _Optional[float] = ..., store_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class TrackResult(_message.Message):
    __slots__ = ("box", "score", "status", "frame_index", "client_frame_number", "capture_time", "timings")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FRAME_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    box: Box
    score: float
    status: TrackStatus
    frame_index: int
    client_frame_number: int
    capture_time: _timestamp_pb2.Timestamp
    timings: StageTimings
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., score: _Optional[float] = ..., status: _Optional[_Union[TrackStatus, str]] = ..., frame_index: _Optional[int] = ..., client_frame_number: _Optional[int] = ..., capture_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timings: _Optional[_Union[StageTimings, _Mapping]] = ...) -> None: ...

class TrackSession(_message.Message):
    __slots__ = ("session_id", "tracker", "options", "create_time", "update_time", "frame_count", "last_result")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_RESULT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    tracker: str
    options: TrackerOptions
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    frame_count: int
    last_result: TrackResult
    def __init__(self, session_id: _Optional[str] = ..., tracker: _Optional[str] = ..., options: _Optional[_Union[TrackerOptions, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., frame_count: _Optional[int] = ..., last_result: _Optional[_Union[TrackResult, _Mapping]] = ...) -> None: ...

class StartTrackRequest(_message.Message):
    __slots__ = ("tracker", "frame", "box", "options")
    TRACKER_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    tracker: str
    frame: Frame
    box: Box
    options: TrackerOptions
    def __init__(self, tracker: _Optional[str] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., options: _Optional[_Union[TrackerOptions, _Mapping]] = ...) -> None: ...

class StartTrackResponse(_message.Message):
    __slots__ = ("session_id", "result")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    result: TrackResult
    def __init__(self, session_id: _Optional[str] = ..., result: _Optional[_Union[TrackResult, _Mapping]] = ...) -> None: ...

class PushFrameRequest(_message.Message):
    __slots__ = ("session_id", "frame")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frame: Frame
    def __init__(self, session_id: _Optional[str] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class PushFrameResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: TrackResult
    def __init__(self, result: _Optional[_Union[TrackResult, _Mapping]] = ...) -> None: ...

class StopTrackRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class StopTrackResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: TrackSession
    def __init__(self, session: _Optional[_Union[TrackSession, _Mapping]] = ...) -> None: ...

class GetTrackRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListTracksRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTracksResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[TrackSession]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[TrackSession, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTrackersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrackerInfo(_message.Message):
    __slots__ = ("name", "family", "description", "template_size", "search_size", "precision", "inference_backend", "package_id", "weights_sha256", "template_update", "adaptive_region", "long_term", "search_sides")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_UPDATE_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_REGION_FIELD_NUMBER: _ClassVar[int]
    LONG_TERM_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SIDES_FIELD_NUMBER: _ClassVar[int]
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
    search_sides: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., description: _Optional[str] = ..., template_size: _Optional[int] = ..., search_size: _Optional[int] = ..., precision: _Optional[str] = ..., inference_backend: _Optional[str] = ..., package_id: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., template_update: _Optional[bool] = ..., adaptive_region: _Optional[bool] = ..., long_term: _Optional[bool] = ..., search_sides: _Optional[_Iterable[int]] = ...) -> None: ...

class ListTrackersResponse(_message.Message):
    __slots__ = ("trackers",)
    TRACKERS_FIELD_NUMBER: _ClassVar[int]
    trackers: _containers.RepeatedCompositeFieldContainer[TrackerInfo]
    def __init__(self, trackers: _Optional[_Iterable[_Union[TrackerInfo, _Mapping]]] = ...) -> None: ...

class TrackRequest(_message.Message):
    __slots__ = ("start", "frame")
    START_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    start: StartTrackRequest
    frame: Frame
    def __init__(self, start: _Optional[_Union[StartTrackRequest, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class TrackResponse(_message.Message):
    __slots__ = ("session_id", "result")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    result: TrackResult
    def __init__(self, session_id: _Optional[str] = ..., result: _Optional[_Union[TrackResult, _Mapping]] = ...) -> None: ...
