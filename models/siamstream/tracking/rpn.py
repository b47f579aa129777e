"""SiamRPN++ and SiamBAN post-processing (pysot `SiamRPNTracker.track`, SiamBAN `SiamBANTracker.track`).

Head outputs arrive as in Contract 1 for one stream (batch 1). Decoded boxes are (cx, cy, w, h) in
search-crop pixels relative to the crop centre; `scale_z` is crop pixels per image pixel. The order of
operations and the dtypes (float32 decode, float64 penalty/window) are the reference's, so that the
chosen index and the smoothed box match it.
"""

from __future__ import annotations

import numpy as np

from siamstream.config import Family, RPNHyper, TrackerConfig
from siamstream.tracking.anchors import ban_points, rpn_anchors
from siamstream.tracking.estimate import TargetEstimate
from siamstream.tracking.penalty import size_change_penalty
from siamstream.tracking.post_processing import PysotPostProcessor, register_post_processor
from siamstream.tracking.validation import rpn_anchor_config
from siamstream.tracking.window import cosine_window, tiled_window


def foreground_scores(cls: np.ndarray) -> np.ndarray:
    """Softmax foreground probability, float32 [N], from logits laid out [bg x N, fg x N]."""
    logits = cls.reshape(2, -1)
    exp = np.exp(logits - np.maximum(logits[0], logits[1]))
    return exp[1] * (np.float32(1.0) / (exp[0] + exp[1]))


def decode_anchor_boxes(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """float32 [4, A*S*S] (cx, cy, w, h) from deltas [1, 4A, S, S] ([dx*A, dy*A, dw*A, dh*A]) and anchors."""
    delta = loc.reshape(4, -1)
    return np.stack(
        [
            delta[0] * anchors[:, 2] + anchors[:, 0],
            delta[1] * anchors[:, 3] + anchors[:, 1],
            np.exp(delta[2]) * anchors[:, 2],
            np.exp(delta[3]) * anchors[:, 3],
        ]
    )


def decode_point_boxes(loc: np.ndarray, points: np.ndarray) -> np.ndarray:
    """float32 [4, S*S] (cx, cy, w, h) from distances [1, 4, S, S] (l, t, r, b) to the points (x, y)."""
    left, top, right, bottom = loc.reshape(4, -1)
    x1, y1 = points[:, 0] - left, points[:, 1] - top
    x2, y2 = points[:, 0] + right, points[:, 1] + bottom
    return np.stack([(x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1])


def select_box(
    hyper: RPNHyper,
    scores: np.ndarray,
    boxes: np.ndarray,
    window: np.ndarray,
    target: tuple[float, float, float, float],
    scale_z: float,
    image_size: tuple[int, int],
) -> TargetEstimate:
    """Pick the best candidate and move the target to it.

    `scores` [N] foreground probabilities, `boxes` [4, N] decoded crop-pixel boxes, `window` [N];
    `target` (cx, cy, w, h) and the result are image pixels; `image_size` is (width, height).
    The candidate maximising penalty*score*(1-wi) + window*wi wins (first on ties); its offset moves the
    centre, its size is blended in at rate penalty*score*lr; then cx, cy are clipped to the image and
    w, h to [min_size, image side].
    """
    cx, cy, w, h = target
    scale_z = np.float64(scale_z)
    penalty = size_change_penalty(boxes[2], boxes[3], w, h, scale_z, hyper.penalty_k)
    ranked = penalty * scores * (1 - hyper.window_influence) + window * hyper.window_influence
    best = int(np.argmax(ranked))
    offset = boxes[:, best] / scale_z
    lr = penalty[best] * scores[best] * hyper.lr
    new_w = w * (1 - lr) + offset[2] * lr
    new_h = h * (1 - lr) + offset[3] * lr
    width, height = image_size
    return TargetEstimate(
        cx=float(max(0, min(offset[0] + cx, width))),
        cy=float(max(0, min(offset[1] + cy, height))),
        w=float(max(hyper.min_size, min(new_w, width))),
        h=float(max(hyper.min_size, min(new_h, height))),
        score=float(scores[best]),
        shift=(float(offset[0]), float(offset[1])),
    )


class SiamRPNPostProcessor(PysotPostProcessor[RPNHyper]):
    """SiamRPN++ (pysot `SiamRPNTracker`): anchor deltas decoded against the config's anchors, a cosine
    window tiled once per anchor. Outputs cls [K, 2A, S, S] and loc [K, 4A, S, S]."""

    family = Family.SIAMRPN
    hyper_type = RPNHyper

    def output_shapes(self, config: TrackerConfig, crops: int) -> list[tuple[int, ...]]:
        s = config.crop.score_size
        anchor_config = rpn_anchor_config(config)
        anchors = len(anchor_config.ratios) * len(anchor_config.scales)
        return [(crops, 2 * anchors, s, s), (crops, 4 * anchors, s, s)]

    def estimate(
        self,
        config: TrackerConfig,
        maps: tuple[np.ndarray, ...],
        target: tuple[float, float, float, float],
        scale_z: float,
        image_size: tuple[int, int],
        search_size: float | None,
    ) -> TargetEstimate:
        cls, loc = maps
        score_size = config.crop.score_size
        anchor_config = rpn_anchor_config(config)
        anchors = rpn_anchors(anchor_config.stride, anchor_config.ratios, anchor_config.scales, score_size)
        boxes = decode_anchor_boxes(loc, anchors)
        window = tiled_window(score_size, len(anchors) // (score_size * score_size))
        hyper = self.hyper(config)
        return select_box(hyper, foreground_scores(cls), boxes, window, target, scale_z, image_size)


class SiamBANPostProcessor(PysotPostProcessor[RPNHyper]):
    """SiamBAN (SiamBAN `SiamBANTracker`; also SiamCAN): point distances decoded against the score-map
    points, one cosine window. Outputs cls [K, 2, S, S] and exponentiated loc [K, 4, S, S]."""

    family = Family.SIAMBAN
    hyper_type = RPNHyper
    exponentiated_box_output = 1

    def output_shapes(self, config: TrackerConfig, crops: int) -> list[tuple[int, ...]]:
        s = config.crop.score_size
        return [(crops, 2, s, s), (crops, 4, s, s)]

    def estimate(
        self,
        config: TrackerConfig,
        maps: tuple[np.ndarray, ...],
        target: tuple[float, float, float, float],
        scale_z: float,
        image_size: tuple[int, int],
        search_size: float | None,
    ) -> TargetEstimate:
        cls, loc = maps
        score_size = config.crop.score_size
        boxes = decode_point_boxes(loc, ban_points(config.crop.stride, score_size))
        window = cosine_window(score_size).ravel()
        hyper = self.hyper(config)
        return select_box(hyper, foreground_scores(cls), boxes, window, target, scale_z, image_size)


SIAMRPN = register_post_processor(SiamRPNPostProcessor())
SIAMBAN = register_post_processor(SiamBANPostProcessor())
