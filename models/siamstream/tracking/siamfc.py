"""SiamFC post-processing (huanglianghua/siamfc-pytorch `TrackerSiamFC.update`).

The K search crops are taken at sides `search_size * scale_factors` around the target. Each response
[S, S] is upsampled bicubically by `response_up`, the non-unit scales are multiplied by `scale_penalty`,
the scale with the highest peak wins; its response is shifted to 0, normalised to sum 1 and blended with
a normalised cosine window; the peak's offset from the map centre is converted response px -> crop px
(x stride / response_up) -> image px (x search side / instance size). The centre and size stay float32
and the target size is not clipped, as in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from siamstream.config import CropConfig, Family, FCHyper, TrackerConfig
from siamstream.tracking.estimate import TargetEstimate
from siamstream.tracking.geometry import (
    BoxXYWH,
    crop_patch_siamfc,
    siamfc_box_from_center,
    siamfc_center_from_box,
)
from siamstream.tracking.post_processing import PostProcessor, TemplateRegion, register_post_processor
from siamstream.tracking.state import TrackerState
from siamstream.tracking.window import normalised_window


def scale_factors(hyper: FCHyper) -> np.ndarray:
    """float64 [K] search-side multipliers step^(-K//2 .. K//2)."""
    half = hyper.scale_num // 2
    return hyper.scale_step ** np.linspace(-half, half, hyper.scale_num)


def upsampled_responses(responses: np.ndarray, hyper: FCHyper) -> np.ndarray:
    """float32 [K, U, U] bicubic upsampling of the responses [K, 1, S, S] (U = S * response_up)."""
    maps = responses.reshape(responses.shape[0], responses.shape[-2], responses.shape[-1])
    up = maps.shape[-1] * hyper.response_up
    return np.stack([cv2.resize(m, (up, up), interpolation=cv2.INTER_CUBIC) for m in maps])


def siamfc_update(
    hyper: FCHyper,
    crop: CropConfig,
    responses: np.ndarray,
    target: tuple[float, float, float, float],
    search_size: float,
) -> TargetEstimate:
    """New target from the responses [K, 1, S, S] of the scale pyramid.

    `target` is (cx, cy, w, h), float32 values, in siamfc-pytorch's centre convention (image px) and
    `search_size` the scale-1 search side (image px). The score is the sigmoid of the raw response (a
    logit of the logistic loss SiamFC is trained with) at the chosen peak, before any penalty.
    """
    cx, cy, w, h = (np.float32(v) for v in target)
    factors = scale_factors(hyper)
    raw = upsampled_responses(responses, hyper)
    penalised = raw.copy()
    penalised[: hyper.scale_num // 2] *= hyper.scale_penalty
    penalised[hyper.scale_num // 2 + 1 :] *= hyper.scale_penalty
    scale_id = int(np.argmax(np.amax(penalised, axis=(1, 2))))

    response = penalised[scale_id]
    response -= response.min()
    response /= response.sum() + 1e-16
    up_size = response.shape[0]
    response = (1 - hyper.window_influence) * response + hyper.window_influence * normalised_window(up_size)
    peak = np.unravel_index(int(response.argmax()), response.shape)

    disp_in_response = np.array(peak) - (up_size - 1) / 2
    disp_in_crop = disp_in_response * crop.stride / hyper.response_up
    disp_in_image = disp_in_crop * search_size * factors[scale_id] / crop.instance_size
    new_cy, new_cx = np.array([cy, cx], dtype=np.float32) + disp_in_image

    scale = (1 - hyper.scale_lr) * 1.0 + hyper.scale_lr * factors[scale_id]
    new_h, new_w = np.array([h, w], dtype=np.float32) * scale
    peak_logit = float(raw[scale_id][peak])
    return TargetEstimate(
        cx=float(np.float32(new_cx)),
        cy=float(np.float32(new_cy)),
        w=float(np.float32(new_w)),
        h=float(np.float32(new_h)),
        score=float(1.0 / (1.0 + np.exp(-peak_logit))),
        search_size=float(np.float64(search_size) * scale),
    )


class SiamFCPostProcessor(PostProcessor[FCHyper]):
    """SiamFC (siamfc-pytorch `TrackerSiamFC`): its centre convention and crops (float32), a scale
    pyramid around the search side kept in the state (`TrackerState.search_size`), `siamfc_update`.
    Output response [K, 1, S, S]."""

    family = Family.SIAMFC
    hyper_type = FCHyper

    def template_region(self, config: TrackerConfig, box_xywh: Sequence[float]) -> TemplateRegion:
        cx, cy, w, h = siamfc_center_from_box(box_xywh)
        context = np.float32(config.crop.context_amount) * (w + h)
        # float32 throughout, like siamfc-pytorch's init.
        side = np.sqrt((w + context) * (h + context))
        search_size = float(side * config.crop.instance_size / config.crop.exemplar_size)
        return TemplateRegion(float(cx), float(cy), float(w), float(h), float(side), search_size)

    def box_from_target(self, cx: float, cy: float, w: float, h: float) -> BoxXYWH:
        return siamfc_box_from_center(cx, cy, w, h)

    def crop(
        self,
        frame: np.ndarray,
        centre: tuple[float, float],
        side: float,
        out_side: int,
        channel_average: Sequence[float],
    ) -> np.ndarray:
        float32_centre = (np.float32(centre[0]), np.float32(centre[1]))
        return crop_patch_siamfc(frame, float32_centre, side, out_side, channel_average)

    def crop_scale(self, config: TrackerConfig, state: TrackerState) -> float:
        return config.crop.instance_size / _search_size(state)

    def search_sides(self, config: TrackerConfig, state: TrackerState) -> tuple[float, ...]:
        search_size = _search_size(state)
        return tuple(float(search_size * factor) for factor in scale_factors(self.hyper(config)))

    def context_ratio(self, config: TrackerConfig, previous: TrackerState, current: TrackerState) -> float:
        return _search_size(current) / _search_size(previous)

    def lost_search_hyper(self) -> dict[str, Any]:
        return {"scale_num": 1}

    def output_shapes(self, config: TrackerConfig, crops: int) -> list[tuple[int, ...]]:
        s = config.crop.score_size
        return [(crops, 1, s, s)]

    def estimate(
        self,
        config: TrackerConfig,
        maps: tuple[np.ndarray, ...],
        target: tuple[float, float, float, float],
        scale_z: float,
        image_size: tuple[int, int],
        search_size: float | None,
    ) -> TargetEstimate:
        if search_size is None:
            raise ValueError("a SiamFC state needs search_size")
        return siamfc_update(self.hyper(config), config.crop, maps[0], target, search_size)


def _search_size(state: TrackerState) -> float:
    if state.search_size is None:
        raise ValueError("a SiamFC state needs search_size")
    return state.search_size


SIAMFC = register_post_processor(SiamFCPostProcessor())
