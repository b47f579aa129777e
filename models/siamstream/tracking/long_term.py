"""Long-term mode: re-detecting a LOST target over a larger region (`LongTermConfig`).

pysot's long-term SiamRPN++ (`siamrpnlt_tracker.py`) searches an 831 px crop instead of the 255 px one
once a frame scores below its CONFIDENCE_LOW, with the cosine window all but off (0.001), keeps the
target where it was until a candidate scores at least CONFIDENCE_LOW, and returns to the normal crop
once one scores above CONFIDENCE_HIGH. Here the trigger and the exit are the track's status: the frames
after the track became LOST are lost searches, and a lost search takes a detection only when it scores
at least `StatusConfig.tracking_above`, which is also what ends LOST. A weaker candidate is not taken
(the box stays where the target was lost): on a frame without the target, the best candidate of a whole
frame is a distractor, and following it would carry the next searches away.

A lost search crops squares of `lost_instance_size` crop px at the target's normal scale (exemplar /
context size; SiamFC: instance / search side, one scale), so the target looks to the network as it did
when tracked. The centres a crop's score map reaches lie within `lost_reach` (image px) of its centre.
When one crop around the last position reaches every centre of the frame ([0, W] x [0, H]), that crop is
the lost search (pysot's); otherwise the frame is covered by the fewest such crops on a regular grid
(`lost_grid`), visited nearest the last position first, `tiles_per_frame` a frame in turn: the state's
`lost_tile` is the grid index the next lost search starts at. The grid depends only on the frame and the
target size, which stay fixed while LOST, so successive frames cover the whole frame.

Each crop is post-processed as the family's search of a crop centred there (penalties relative to the
held size, the long-term window influence); the best-scoring crop wins, the first on ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from siamstream.config import TrackerConfig
from siamstream.tracking.post_processing import post_processor
from siamstream.tracking.state import TrackerState, TrackStatus


@dataclass(frozen=True)
class LostSearch:
    """The crops of one lost search: their centres (cx, cy) in image px in the family's convention, the
    crop scale `scale_z` (crop px per image px), the square's side in image px, and the state's next
    `lost_tile`."""

    centres: tuple[tuple[float, float], ...]
    scale_z: float
    image_side: float
    next_tile: int


def lost_search_active(config: TrackerConfig, state: TrackerState) -> bool:
    """Whether the next search of `state` is a lost search: long-term mode on and the track LOST."""
    return config.long_term.enabled and state.status is TrackStatus.LOST


def lost_config(config: TrackerConfig) -> TrackerConfig:
    """`config` as a lost search post-processes one crop: the lost crop side (hence score map), the
    long-term window influence, and for SiamFC a single scale."""
    long_term = config.long_term
    hyper = {"window_influence": long_term.window_influence, **post_processor(config).lost_search_hyper()}
    crop = config.crop.model_copy(update={"instance_size": long_term.lost_instance_size})
    return config.model_copy(update={"crop": crop, "hyper": config.hyper.model_copy(update=hyper)})


def lost_reach(config: TrackerConfig, scale_z: float) -> float:
    """Image px from a lost crop's centre to the farthest centre its score map reaches."""
    lost = lost_config(config).crop
    return (lost.score_size - 1) / 2 * lost.stride / scale_z


def lost_grid(width: int, height: int, reach: float, near: tuple[float, float]) -> list[tuple[float, float]]:
    """Centres (image px) of the fewest crops of reach `reach` on a regular grid that reach every point
    of [0, width] x [0, height], nearest `near` first (row-major on ties)."""
    columns, rows = math.ceil(width / (2 * reach)), math.ceil(height / (2 * reach))
    grid = [
        ((i + 0.5) * width / columns, (j + 0.5) * height / rows) for j in range(rows) for i in range(columns)
    ]
    return sorted(grid, key=lambda centre: math.hypot(centre[0] - near[0], centre[1] - near[1]))


def plan_lost_search(config: TrackerConfig, state: TrackerState) -> LostSearch:
    """The crops the state's next lost search runs (see the module docstring)."""
    scale_z = post_processor(config).crop_scale(config, state)
    reach = lost_reach(config, scale_z)
    image_side = config.long_term.lost_instance_size / scale_z
    width, height = state.image_width, state.image_height
    if state.cx <= reach and state.cy <= reach and width - state.cx <= reach and height - state.cy <= reach:
        return LostSearch(((state.cx, state.cy),), scale_z, image_side, next_tile=0)
    grid = lost_grid(width, height, reach, (state.cx, state.cy))
    count = min(config.long_term.tiles_per_frame, len(grid))
    first = state.lost_tile % len(grid)
    centres = tuple(grid[(first + k) % len(grid)] for k in range(count))
    return LostSearch(centres, scale_z, image_side, next_tile=(first + count) % len(grid))
