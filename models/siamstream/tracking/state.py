"""The per-stream tracker record and the answer for one frame.

`TrackerState` is what the session store keeps between frames (beside the template embedding): it is a
frozen pydantic model that round-trips through JSON exactly (floats are written with full precision).
Coordinates are image pixels; the centre convention is the reference tracker's of the family (see
`geometry`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from siamstream.config import Family, StatusConfig


class TrackStatus(StrEnum):
    """Confidence of a track, derived from the score history by `next_status`."""

    TRACKING = "tracking"
    UNCERTAIN = "uncertain"
    LOST = "lost"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackerState(_Record):
    """Everything a stream needs between two frames, apart from the template embedding."""

    family: Family = Field(description="Post-processing family the state was made for.")
    frame_index: int = Field(ge=0, description="Index of the last processed frame (0 = the init frame).")
    cx: float = Field(description="Target centre x in image pixels (family's reference convention).")
    cy: float = Field(description="Target centre y in image pixels (family's reference convention).")
    w: float = Field(gt=0, description="Target width in image pixels.")
    h: float = Field(gt=0, description="Target height in image pixels.")
    image_width: int = Field(gt=0, description="Width of the first frame; later frames must match.")
    image_height: int = Field(gt=0, description="Height of the first frame; later frames must match.")
    channel_average: tuple[float, float, float] = Field(
        description="Per-channel (BGR) mean of the first frame, used to pad crops outside the image."
    )
    search_size: float | None = Field(
        default=None, description="SiamFC only: side of the scale-1 search region in image pixels."
    )
    last_score: float | None = Field(default=None, description="Score of the last frame; None after init.")
    status: TrackStatus = Field(default=TrackStatus.TRACKING, description="Status after the last frame.")
    low_score_count: int = Field(
        default=0, ge=0, description="Consecutive frames, up to the last, scoring below `lost_below`."
    )
    fast_motion: bool = Field(
        default=False,
        description="SiamBAN-ACM: the search crop switched for good to `fast_motion_instance_size`.",
    )
    template_updates: int = Field(default=0, ge=0, description="Online template updates applied since init.")
    initial_template_weight: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of the init frame's template in the blended template embedding: the product of "
        "(1 - rate) over the updates applied.",
    )
    search_growth: int = Field(
        default=0,
        ge=0,
        description="Adaptive search region: steps the next search crop's side has grown by "
        "(`SearchConfig.region_step` each); 0 is the normal crop.",
    )
    lost_tile: int = Field(
        default=0,
        ge=0,
        description="Long-term mode: grid index of the next lost search's first tile (`long_term`).",
    )

    @model_serializer(mode="wrap")
    def _without_default_options(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A track on the normal crop, outside the long-term search's grid, writes the record it wrote
        # before those options existed, so a replica of the previous release (which refuses unknown keys)
        # still reads it mid-rollout.
        record = handler(self)
        for key in ("search_growth", "lost_tile"):
            if record.get(key) == 0:
                record.pop(key)
        return record


class TrackResult(_Record):
    """The answer for one frame."""

    frame_index: int = Field(ge=0, description="Index of the frame in the stream (0 = the init frame).")
    bbox: tuple[float, float, float, float] = Field(description="Target box xywh in image pixels.")
    score: float | None = Field(description="Confidence of the frame in [0, 1]; None on the init frame.")
    status: TrackStatus = Field(description="Track status after this frame.")


def next_status(
    config: StatusConfig, previous: TrackStatus, low_score_count: int, score: float
) -> tuple[TrackStatus, int]:
    """Status and consecutive low-score count after a frame scoring `score`.

    TRACKING at `tracking_above` or more. Otherwise UNCERTAIN, or LOST once `lost_after` consecutive
    frames scored below `lost_below`; a LOST track stays LOST until a frame reaches `tracking_above`.
    """
    count = low_score_count + 1 if score < config.lost_below else 0
    if score >= config.tracking_above:
        return TrackStatus.TRACKING, count
    if previous is TrackStatus.LOST or count >= config.lost_after:
        return TrackStatus.LOST, count
    return TrackStatus.UNCERTAIN, count
