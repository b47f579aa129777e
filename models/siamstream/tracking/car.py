"""SiamCAR post-processing (ohhhyeahhh/SiamCAR `SiamCARTracker.track`).

Maps of one stream: `cls` [1, 2, S, S] logits, `loc` [1, 4, S, S] exponentiated distances (l, t, r, b) in
search-crop pixels, `cen` [1, 1, S, S] centerness. They are upsampled bicubically to U = (S-1)*stride + 1
(193 for S = 25); upsampled cell (r, c) lies at crop pixel (offset + c, offset + r) with
offset = int((instance - (S-1)*stride) / 2) (31), the crop centre being (instance - 1)/2.
Integer rounding, dtypes and the order of operations are the reference's.
"""

from __future__ import annotations

import cv2
import numpy as np

from siamstream.config import CARHyper, CropConfig, Family, TrackerConfig
from siamstream.tracking.estimate import TargetEstimate
from siamstream.tracking.penalty import change, padded_size, size_change_penalty
from siamstream.tracking.post_processing import PysotPostProcessor, register_post_processor
from siamstream.tracking.rpn import foreground_scores
from siamstream.tracking.window import cosine_window


def normalised_centerness(cen: np.ndarray) -> np.ndarray:
    """float32 [S, S] centerness min-max normalised over the frame (all ones if the map is flat)."""
    cen = cen.reshape(cen.shape[-2:])
    spread = np.ptp(cen)
    if spread == 0:
        return np.ones_like(cen)
    return (cen - cen.min()) / spread


def fine_search_region(
    peak: tuple[int, int], lrtb: np.ndarray, up_size: int, score_size: int, hyper: CARHyper, exemplar: int
) -> tuple[slice, slice]:
    """Rows and columns of the upsampled map searched around the coarse `peak` (row, col).

    The half-extents are the coarse cell's (l, t, r, b) clipped to [int(region_s*Z), int(region_l*Z)],
    never past the map border, halved and truncated; the coarse cell is round(peak / (U/S)) (half to
    even), kept inside the map.
    """
    row_up, col_up = peak
    scale_score = up_size / score_size
    row = min(max(round(row_up / scale_score), 0), score_size - 1)
    col = min(max(round(col_up / scale_score), 0), score_size - 1)
    low, high = int(hyper.region_s * exemplar), int(hyper.region_l * exemplar)
    left, top, right, bottom = (max(low, min(float(v), high)) for v in lrtb[:, row, col])
    l_region = int(min(col_up, left) / 2.0)
    t_region = int(min(row_up, top) / 2.0)
    r_region = int(min(up_size - col_up, right) / 2.0)
    b_region = int(min(up_size - row_up, bottom) / 2.0)
    return slice(row_up - t_region, row_up + b_region + 1), slice(col_up - l_region, col_up + r_region + 1)


def car_update(
    hyper: CARHyper,
    crop: CropConfig,
    outputs: tuple[np.ndarray, np.ndarray, np.ndarray],
    target: tuple[float, float, float, float],
    scale_z: float,
    image_size: tuple[int, int],
) -> TargetEstimate:
    """New target from the SiamCAR maps `(cls, loc, cen)`; `target` (cx, cy, w, h) and the result are
    image pixels, `image_size` is (width, height).

    p_score = penalty * cls * normalised centerness; the coarse peak of the windowed p_score (upsampled)
    bounds a region where the fine peak of the unwindowed upsampled p_score is taken. Its offset moves
    the centre; the upsampled (l+r, t+b) there, divided by scale_z, is blended in at rate
    penalty*cls*lr, where this second penalty compares it with the target size times scale_z as the
    reference does. cx, cy, w, h are clipped to [0, image side] (no minimum size).
    """
    cls_logits, loc, cen = outputs
    cx, cy, w, h = target
    scale_z = np.float64(scale_z)
    score_size = crop.score_size
    up_size = (score_size - 1) * crop.stride + 1
    up = (up_size, up_size)

    cls = foreground_scores(cls_logits).reshape(score_size, score_size)
    lrtb = loc.reshape(4, score_size, score_size)
    penalty = size_change_penalty(lrtb[0] + lrtb[2], lrtb[1] + lrtb[3], w, h, scale_z, hyper.penalty_k)
    p_score = penalty * cls * normalised_centerness(cen)
    if hyper.hanming:
        windowed = p_score * (1 - hyper.window_influence) + cosine_window(score_size) * hyper.window_influence
    else:
        windowed = p_score
    windowed_up = cv2.resize(windowed, up, interpolation=cv2.INTER_CUBIC)
    p_score_up = cv2.resize(p_score, up, interpolation=cv2.INTER_CUBIC)
    cls_up = cv2.resize(cls, up, interpolation=cv2.INTER_CUBIC)
    lrtb_up = cv2.resize(np.ascontiguousarray(lrtb.transpose(1, 2, 0)), up, interpolation=cv2.INTER_CUBIC)

    coarse = np.unravel_index(int(windowed_up.argmax()), windowed_up.shape)
    rows, cols = fine_search_region(
        (int(coarse[0]), int(coarse[1])), lrtb, up_size, score_size, hyper, crop.exemplar_size
    )
    # Multiply by a 0/1 mask rather than searching the region alone: outside cells then count as 0,
    # which is what the reference's argmax sees when the region's values are all negative.
    mask = np.zeros_like(p_score_up)
    mask[rows, cols] = 1
    row_up, col_up = np.unravel_index(int((p_score_up * mask).argmax()), p_score_up.shape)

    offset = int((crop.instance_size - (score_size - 1) * crop.stride) / 2)
    disp = (np.array([row_up + offset, col_up + offset]) - (crop.instance_size - 1.0) / 2.0) / scale_z
    new_cx = disp[1] + cx
    new_cy = disp[0] + cy

    ltrb_at = lrtb_up[row_up, col_up]
    ave_w = (ltrb_at[0] + ltrb_at[2]) / scale_z
    ave_h = (ltrb_at[1] + ltrb_at[3]) / scale_z
    target_w, target_h = np.float64(w), np.float64(h)
    scale_change = change(padded_size(ave_w, ave_h) / padded_size(target_w * scale_z, target_h * scale_z))
    ratio_change = change((target_w / target_h) / (ave_w / ave_h))
    size_penalty = np.exp(-(ratio_change * scale_change - 1) * hyper.penalty_k)
    cls_at = cls_up[row_up, col_up]
    lr = size_penalty * cls_at * hyper.lr
    new_w = lr * ave_w + (1 - lr) * target_w
    new_h = lr * ave_h + (1 - lr) * target_h
    width, height = image_size
    return TargetEstimate(
        cx=float(max(0, min(new_cx, width))),
        cy=float(max(0, min(new_cy, height))),
        w=float(max(0, min(new_w, width))),
        h=float(max(0, min(new_h, height))),
        # The reference reports no score; the upsampled foreground probability at the chosen cell is
        # the closest to pysot's reported score (bicubic overshoot clipped back to [0, 1]).
        score=float(np.clip(cls_at, 0.0, 1.0)),
    )


class SiamCARPostProcessor(PysotPostProcessor[CARHyper]):
    """SiamCAR (also DCFNet, whose flat centerness map counts as 1 everywhere): `car_update`. Outputs cls
    [K, 2, S, S], exponentiated loc [K, 4, S, S] and cen [K, 1, S, S]."""

    family = Family.SIAMCAR
    hyper_type = CARHyper
    exponentiated_box_output = 1

    def output_shapes(self, config: TrackerConfig, crops: int) -> list[tuple[int, ...]]:
        s = config.crop.score_size
        return [(crops, 2, s, s), (crops, 4, s, s), (crops, 1, s, s)]

    def estimate(
        self,
        config: TrackerConfig,
        maps: tuple[np.ndarray, ...],
        target: tuple[float, float, float, float],
        scale_z: float,
        image_size: tuple[int, int],
        search_size: float | None,
    ) -> TargetEstimate:
        cls, loc, cen = maps
        return car_update(self.hyper(config), config.crop, (cls, loc, cen), target, scale_z, image_size)


SIAMCAR = register_post_processor(SiamCARPostProcessor())
