"""A small asyncio client of the `siamstream.v1` tracking API (`TrackingClient`) and `siamstream client`."""

from .client import TrackingClient
from .frames import ImageFormat, encode_frame
from .results import FrameResult, SessionInfo, StartedTrack, StreamedFrame

__all__ = [
    "FrameResult",
    "ImageFormat",
    "SessionInfo",
    "StartedTrack",
    "StreamedFrame",
    "TrackingClient",
    "encode_frame",
]
