"""The tracking step shared by the offline tracker and the service (Contract 3).

    state, template_request = init_track(config, frame, box_xywh)     # then run template.pt
    search_request = prepare_search(config, state, frame)              # then run search.pt
    state, result = finish_search(config, state, search_request, outputs)

With `search.one_more_search` the caller then asks `search_options.second_search_origin` whether the frame
is searched again from a re-centred state, with the same three calls, and keeps `better_search`; the
adaptive region's crop side comes from the state (`search_options.grown_config`). In long-term mode a LOST
state's search is a lost search (`long_term`): several larger crops, decoded one by one, the best kept.

Frames are BGR uint8 HxWx3, boxes xywh in image pixels; crops are uint8 [K, 3, S, S]. Every function is
pure: the state is a value, the network runs outside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from siamstream.config import TrackerConfig
from siamstream.tracking.acm import fast_motion_after, search_config
from siamstream.tracking.estimate import TargetEstimate
from siamstream.tracking.geometry import channel_average, context_size, to_model_layout
from siamstream.tracking.long_term import LostSearch, lost_config, lost_search_active, plan_lost_search
from siamstream.tracking.post_processing import PostProcessor, post_processor
from siamstream.tracking.search_options import grown_config, next_growth
from siamstream.tracking.state import TrackerState, TrackResult, TrackStatus, next_status
from siamstream.tracking.template_update import split_search_outputs
from siamstream.tracking.validation import (
    bounded_target_size,
    box_overflowed,
    check_box,
    check_frame,
    check_frame_size,
    check_outputs,
)


@dataclass(frozen=True)
class TemplateRequest:
    """Input of the template stage: `crop` uint8 [1, 3, Z, Z] and `box_prior` float32 [1, 2], the target
    (w, h) in template-crop pixels (w*r, h*r) with r = exemplar / rounded context size."""

    crop: np.ndarray
    box_prior: np.ndarray


@dataclass(frozen=True)
class SearchRequest:
    """Input of the search stage for one frame: `crops` uint8 [K, 3, X, X] (K = 1, or SiamFC's scale
    count, smallest scale first; X the state's search side, see `search_options`), the index of the
    frame they come from, and `scale_z`, crop pixels per image pixel as the reference computes it
    (exemplar / unrounded context size; for SiamFC instance / scale-1 search side). `lost_search`: the
    plan of a lost search (one crop per centre, long-term mode), None for a normal search."""

    crops: np.ndarray
    frame_index: int
    scale_z: float
    lost_search: LostSearch | None = None


def init_track(
    config: TrackerConfig, frame: np.ndarray, box_xywh: Sequence[float]
) -> tuple[TrackerState, TemplateRequest]:
    """Start a track on `frame` at `box_xywh` (image px): the initial state and the template crop."""
    frame = check_frame(frame)
    height, width = frame.shape[:2]
    box = check_box(box_xywh, width, height, config.crop.context_amount)
    family = post_processor(config)
    exemplar = config.crop.exemplar_size
    blue, green, red = (float(value) for value in channel_average(frame))
    first_frame_mean = (blue, green, red)
    region = family.template_region(config, box)
    crop = _crops(family, frame, [(region.cx, region.cy)], [region.side], exemplar, first_frame_mean)
    ratio = exemplar / max(round(region.side), 1)
    state = TrackerState(
        family=config.family,
        frame_index=0,
        cx=region.cx,
        cy=region.cy,
        w=region.w,
        h=region.h,
        image_width=width,
        image_height=height,
        channel_average=first_frame_mean,
        search_size=region.search_size,
    )
    box_prior = np.array([[region.w * ratio, region.h * ratio]], dtype=np.float32)
    return state, TemplateRequest(crop=crop, box_prior=box_prior)


def prepare_search(config: TrackerConfig, state: TrackerState, frame: np.ndarray) -> SearchRequest:
    """Search crops of `frame` around the state's target (image px -> crop px)."""
    _check_state(config, state)
    frame = check_frame(frame)
    check_frame_size(frame, state.image_width, state.image_height)
    family = post_processor(config)
    if lost_search_active(config, state):
        plan = plan_lost_search(config, state)
        crops = _crops(
            family,
            frame,
            plan.centres,
            [plan.image_side],
            config.long_term.lost_instance_size,
            state.channel_average,
        )
        return SearchRequest(crops, state.frame_index + 1, plan.scale_z, lost_search=plan)
    config = grown_config(search_config(config, state), state)
    crops = _crops(
        family,
        frame,
        [(state.cx, state.cy)],
        family.search_sides(config, state),
        config.crop.instance_size,
        state.channel_average,
    )
    return SearchRequest(crops, state.frame_index + 1, family.crop_scale(config, state))


def _crops(
    family: PostProcessor[Any],
    frame: np.ndarray,
    centres: Sequence[tuple[float, float]],
    sides: Sequence[float],
    out_side: int,
    channel_average: Sequence[float],
) -> np.ndarray:
    """uint8 [K, 3, out_side, out_side]: around each centre (image px) in turn, the square of each side
    (image px) in turn, cut and resized as the family's reference does (`PostProcessor.crop`)."""
    patches = [
        family.crop(frame, centre, side, out_side, channel_average) for centre in centres for side in sides
    ]
    return to_model_layout(patches)


def finish_search(
    config: TrackerConfig, state: TrackerState, request: SearchRequest, outputs: Sequence[np.ndarray]
) -> tuple[TrackerState, TrackResult]:
    """Turn the search outputs for `request` (Contract 1 layouts, one row per crop) into the next state
    and the frame's result (box xywh in image px). An update-capable package's trailing search features
    are ignored here (see `tracking.template_update`)."""
    _check_state(config, state)
    if request.frame_index != state.frame_index + 1:
        raise ValueError(
            f"search request is for frame {request.frame_index} but the state is at frame {state.frame_index}"
        )
    family = post_processor(config)
    if request.lost_search is not None:
        estimate = _lost_estimate(family, config, state, request, request.lost_search, outputs)
    else:
        config = grown_config(search_config(config, state), state)
        maps = _checked_maps(config, request, outputs)
        target = (state.cx, state.cy, state.w, state.h)
        image_size = (state.image_width, state.image_height)
        estimate = family.estimate(config, maps, target, request.scale_z, image_size, state.search_size)
        if box_overflowed(config, maps) or _degenerate(estimate):
            estimate = _held(state)
    estimate = _bounded(estimate, state, config.crop.context_amount)
    bbox = family.box_from_target(estimate.cx, estimate.cy, estimate.w, estimate.h)
    status, low_count = next_status(config.status, state.status, state.low_score_count, estimate.score)
    lost_tile = 0
    if request.lost_search is not None and status is TrackStatus.LOST:
        lost_tile = request.lost_search.next_tile
    # Validated (not model_copy) so that a degenerate estimate can never be stored.
    new_state = TrackerState.model_validate(
        {
            **state.model_dump(),
            "frame_index": request.frame_index,
            "cx": estimate.cx,
            "cy": estimate.cy,
            "w": estimate.w,
            "h": estimate.h,
            "search_size": estimate.search_size,
            "last_score": estimate.score,
            "status": status,
            "low_score_count": low_count,
            "fast_motion": fast_motion_after(config, state, estimate),
            "search_growth": next_growth(config.search, state.search_growth, estimate.score),
            "lost_tile": lost_tile,
        }
    )
    result = TrackResult(frame_index=request.frame_index, bbox=bbox, score=estimate.score, status=status)
    return new_state, result


def _checked_maps(
    config: TrackerConfig, request: SearchRequest, outputs: Sequence[np.ndarray]
) -> tuple[np.ndarray, ...]:
    head_outputs, _ = split_search_outputs(config, outputs, request.crops.shape[0])
    return check_outputs(config, head_outputs, request.crops.shape[0])


def _lost_estimate(
    family: PostProcessor[Any],
    config: TrackerConfig,
    state: TrackerState,
    request: SearchRequest,
    lost_search: LostSearch,
    outputs: Sequence[np.ndarray],
) -> TargetEstimate:
    """The best detection of a lost search when it scores at least `tracking_above`, else the held
    target with that best score (see `long_term`)."""
    lost = lost_config(config)
    maps = _checked_maps(lost, request, outputs)
    image_size = (state.image_width, state.image_height)
    best: TargetEstimate | None = None
    for row, (cx, cy) in enumerate(lost_search.centres):
        crop_maps = tuple(m[row : row + 1] for m in maps)
        if box_overflowed(lost, crop_maps):  # a failed tile, not a failed search: the others still count
            continue
        target = (cx, cy, state.w, state.h)
        estimate = family.estimate(
            lost, crop_maps, target, request.scale_z, image_size, lost_search.image_side
        )
        if not _degenerate(estimate) and (best is None or estimate.score > best.score):
            best = estimate
    if best is None:
        return _held(state)
    if best.score < config.status.tracking_above:
        return replace(_held(state), score=best.score)
    # A single-scale SiamFC search keeps the size: the normal search side goes on.
    return replace(best, search_size=state.search_size, shift=None)


def _degenerate(estimate: TargetEstimate) -> bool:
    """Whether a post-processor gave a box no state can hold: a non-finite value or an empty side. The
    reference trackers carry such a box on (into NaN crops or a division by zero); it comes from a model
    outside its working range, e.g. an exponentiated box head that overflowed."""
    values = (estimate.cx, estimate.cy, estimate.w, estimate.h, estimate.score)
    return not all(np.isfinite(values)) or estimate.w <= 0 or estimate.h <= 0


def _bounded(estimate: TargetEstimate, state: TrackerState, context_amount: float) -> TargetEstimate:
    """The estimate with its size kept within the init box's bounds (`bounded_target_size`), so that no
    sequence of frames can grow the crops past what a start would accept. SiamFC's search side follows
    its context region. Only SiamFC (never clipped by the reference) and a sub-pixel SiamCAR box change."""
    w, h = bounded_target_size(estimate.w, estimate.h, state.image_width, state.image_height, context_amount)
    if (w, h) == (estimate.w, estimate.h):
        return estimate
    search_size = estimate.search_size
    if search_size is not None:
        old_context = context_size(estimate.w, estimate.h, context_amount)
        search_size *= context_size(w, h, context_amount) / old_context
    return replace(estimate, w=w, h=h, search_size=search_size)


def _held(state: TrackerState) -> TargetEstimate:
    """The previous target kept with score 0, so the frame counts as failed in the status rule."""
    return TargetEstimate(
        cx=state.cx, cy=state.cy, w=state.w, h=state.h, score=0.0, search_size=state.search_size
    )


def _check_state(config: TrackerConfig, state: TrackerState) -> None:
    if state.family != config.family:
        raise ValueError(f"state was made for family {state.family}, the tracker is {config.family}")
