"""What the service keeps in a session record's `state_json`, and the views it hands to the API layer.

The store treats `state_json` as opaque; the service stores the tracker library's `TrackerState` together
with the last frame's result, so that GetTrack and StopTrack answer with the box the client last saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from siamstream.tracking.state import TrackerState, TrackResult, TrackStatus

from .options import TrackOptions
from .timings import StageTimings


class SessionState(BaseModel):
    """The JSON document in `SessionRecord.state_json`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker_state: TrackerState = Field(description="The tracker's record between two frames.")
    last_result: TrackResult = Field(description="Answer for the last processed frame.")
    last_result_client_frame: int | None = Field(
        default=None, description="Client number of the last processed frame, when it carried one."
    )


@dataclass(frozen=True)
class TrackedFrame:
    """What tracking one pushed frame did beside its result, for the quality metrics: the track's status
    before it, and whether it applied a template update."""

    previous_status: TrackStatus
    template_updated: bool


@dataclass(frozen=True)
class FrameOutcome:
    """The service's answer for one frame (the start frame included); `replayed`: the stored answer of a
    retried frame, which was not tracked again; `tracked`: set for a pushed frame that was tracked."""

    session_id: str
    result: TrackResult
    client_frame_number: int | None
    timings: StageTimings
    replayed: bool = False
    tracked: TrackedFrame | None = None


@dataclass(frozen=True)
class SessionView:
    """A session as GetTrack, StopTrack and ListTracks describe it; times are Unix seconds."""

    session_id: str
    tracker: str
    options: TrackOptions
    created_at: float
    updated_at: float
    frame_count: int
    last_result: TrackResult
    last_result_client_frame: int | None
