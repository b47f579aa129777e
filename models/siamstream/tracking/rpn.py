"""SiamRPN++ and SiamBAN post-processing (pysot `SiamRPNTracker.track`, SiamBAN `SiamBANTracker.track`).

Head outputs arrive as in Contract 1 for one stream (batch 1). Decoded boxes are (cx, cy, w, h) in
search-crop pixels relative to the crop centre; `scale_z` is crop pixels per image pixel. The order of
operations and the dtypes (float32 decode, float64 penalty/window) are the reference's, so that the
chosen index and the smoothed box match it.
"""

from __future__ import annotations

import numpy as np

from siamstream.config import RPNHyper
from siamstream.tracking.estimate import TargetEstimate
from siamstream.tracking.penalty import size_change_penalty


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
