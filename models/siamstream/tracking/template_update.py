"""The confidence-gated online template update (SiamMargin), the tracking side.

After a frame, when the tracker's config enables the update and the frame scored at least the gate, the
template is blended with a candidate cut from the frame's own search features at the new target:
`embedding <- (1 - rate) * embedding + rate * candidate`. This module decides whether and where (pure
numpy); the network side is `update.pt` (`siamstream.nn.template_update`), which the caller runs on the
returned request and whose result becomes the stream's template embedding, stored with the new state.

The region handed to the update stage is the template crop's footprint around the new target, in pixels
of the search crop the features come from, relative to that crop's centre: the target with its context,
of side `exemplar * (new context size / context size at the search)`, i.e. the region the template crop
would cover if it were taken now. The update stage shrinks it to the part its template maps cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from siamstream.config import TrackerConfig
from siamstream.tracking.post_processing import post_processor
from siamstream.tracking.state import TrackerState
from siamstream.tracking.validation import expected_output_shapes

if TYPE_CHECKING:  # the step imports this module
    from siamstream.tracking.step import SearchRequest


@dataclass(frozen=True)
class TemplateUpdateRequest:
    """Inputs of `update.pt` for one stream besides its template embedding.

    `search_features` float32 [1, L*C, F, F] (the searched crop's row), `roi` float32 [1, 4]
    (x1, y1, x2, y2) in search-crop pixels relative to the crop centre, `rate` float32 [1].
    """

    search_features: np.ndarray
    roi: np.ndarray
    rate: np.ndarray


def split_search_outputs(
    config: TrackerConfig, outputs: Sequence[np.ndarray], crops: int
) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    """The family's head outputs and, from an update-capable package, the trailing search features.

    A tracker whose config enables the update may pass one output more than its family's (Contract 1);
    any other count is left to the step's output check.
    """
    head_count = len(expected_output_shapes(config, crops))
    if config.template_update.enabled and len(outputs) == head_count + 1:
        return tuple(outputs[:head_count]), np.asarray(outputs[head_count], dtype=np.float32)
    return tuple(outputs), None


def plan_template_update(
    config: TrackerConfig,
    previous: TrackerState,
    request: SearchRequest,
    current: TrackerState,
    outputs: Sequence[np.ndarray],
) -> tuple[TrackerState, TemplateUpdateRequest | None]:
    """After `finish_search` moved `previous` to `current` with the search `outputs` for `request`: the
    state with its update counters advanced and the update to apply, or `current` and None.

    No update when the config disables it, the rate is 0, the frame scored below the gate, or the search
    was a long-term lost search: a re-detection is the least certain frame of a track, and the next frame,
    searched normally around it, updates the template if it scores at the gate. Raises ValueError when an
    update is due but `outputs` carry no search features (a package exported without the update stage).
    """
    settings = config.template_update
    score = current.last_score
    if not settings.enabled or settings.rate == 0.0 or score is None or score < settings.gate:
        return current, None
    if request.lost_search is not None:
        return current, None
    crops = request.crops.shape[0]
    _, features = split_search_outputs(config, outputs, crops)
    if features is None:
        raise ValueError(
            f"tracker {config.name!r} updates its template but the search gave no search features"
        )
    # SiamFC searches a scale pyramid: the features of the scale-1 crop (the middle one) are used.
    row = crops // 2
    ratio = post_processor(config).context_ratio(config, previous, current)
    half_side = config.crop.exemplar_size * ratio * 0.5
    dx = (current.cx - previous.cx) * request.scale_z
    dy = (current.cy - previous.cy) * request.scale_z
    roi = np.array([[dx - half_side, dy - half_side, dx + half_side, dy + half_side]], dtype=np.float32)
    updated = TrackerState.model_validate(
        {
            **current.model_dump(),
            "template_updates": current.template_updates + 1,
            "initial_template_weight": current.initial_template_weight * (1.0 - settings.rate),
        }
    )
    update = TemplateUpdateRequest(
        search_features=features[row : row + 1],
        roi=roi,
        rate=np.array([settings.rate], dtype=np.float32),
    )
    return updated, update
