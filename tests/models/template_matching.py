"""A stand-in for a trained network that really finds its target: normalised cross-correlation.

`TemplateMatchingRunner` implements the two stages of Contract 1 for the siamrpn and siamban families.
The template stage keeps the target's pixels at the template crop's centre (and its size in crop pixels);
the search stage matches them over the search crop with `cv2.matchTemplate` and, at each score-map cell,
answers the best match within the cell's stride as the foreground logit `12 * (ncc - 0.6)` (0.99 for a
perfect match, under 0.01 for unrelated texture) and a box of the target's size centred on that match.
The score map has the family's size for whatever crop side it is given, so the step's geometry (grown
crops, re-centred searches) is checked on real pictures: a target the crop shows is found to the pixel.

`textured_frames` draws such pictures: smooth noise, a smooth target pasted at given top-left corners.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from siamstream.config import TrackerConfig
from siamstream.tracking.anchors import grid_offsets, rpn_anchors
from siamstream.tracking.validation import rpn_anchor_config

LOGIT_GAIN = 12.0
LOGIT_CENTRE = 0.6


def _smooth_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3).astype(np.float32)
    # Blurring shrinks the contrast; stretch it back so that the texture matches sharply.
    smooth = (smooth - smooth.mean()) / smooth.std() * 50 + 128
    return np.clip(smooth, 0, 255).astype(np.uint8)


def textured_frames(
    corners: Sequence[tuple[int, int] | None], side: int, width: int = 480, height: int = 320
) -> list[np.ndarray]:
    """BGR frames of one background with a side x side target at each top-left corner (x, y); a None
    corner is a frame without the target."""
    rng = np.random.default_rng(3)
    background = _smooth_noise(rng, height, width)
    target = _smooth_noise(rng, side, side)
    frames = []
    for corner in corners:
        frame = background.copy()
        if corner is not None:
            x, y = corner
            frame[y : y + side, x : x + side] = target
        frames.append(frame)
    return frames


class TemplateMatchingRunner:
    """Template and search stages that locate the target by normalised cross-correlation.

    `crop_sides` records the side of every search crop it was given, in order.
    """

    def __init__(self, config: TrackerConfig) -> None:
        if config.family not in ("siamrpn", "siamban"):
            raise ValueError(f"no template matching for the {config.family} family")
        self.config = config
        self.crop_sides: list[int] = []

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        """Embedding [1, 3 + 3*t*t]: t, the target's (w, h) in crop px, the central t x t pixels."""
        w, h = (float(v) for v in box_prior[0])
        side = 2 * int(min(w, h) / 2) - 1  # odd, inside the target
        crop = crop_z[0].transpose(1, 2, 0)
        start = (crop.shape[0] - side) // 2
        patch = crop[start : start + side, start : start + side].astype(np.float32)
        return np.concatenate([[side, w, h], patch.ravel()]).astype(np.float32)[None]

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        side, target_w, target_h = (float(v) for v in template_embedding[0, :3])
        t = int(side)
        patch = template_embedding[0, 3:].reshape(t, t, 3)
        crop_side = crop_x.shape[-1]
        self.crop_sides.append(crop_side)
        crop = crop_x[0].transpose(1, 2, 0).astype(np.float32)
        response = cv2.matchTemplate(crop, patch, cv2.TM_CCOEFF_NORMED)
        crop_config = self.config.crop
        stride = crop_config.stride
        score_size = (crop_side - crop_config.exemplar_size) // stride + 1 + crop_config.base_size
        offsets = grid_offsets(stride, score_size)
        centre = (crop_side - 1) / 2
        ncc = np.full((score_size, score_size), -1.0, np.float32)
        shift = np.zeros((2, score_size, score_size), np.float32)  # best match - cell, crop px (x, y)
        last = response.shape[0] - 1
        for i, offset_y in enumerate(offsets):
            for j, offset_x in enumerate(offsets):
                # Top-left corners of the patch whose centre lies within half a stride of the cell.
                x0 = centre + offset_x - (t - 1) / 2
                y0 = centre + offset_y - (t - 1) / 2
                xs = slice(max(round(x0 - stride / 2), 0), min(round(x0 + stride / 2), last) + 1)
                ys = slice(max(round(y0 - stride / 2), 0), min(round(y0 + stride / 2), last) + 1)
                window = response[ys, xs]
                if window.size == 0:
                    continue
                row, col = np.unravel_index(int(window.argmax()), window.shape)
                ncc[i, j] = window[row, col]
                shift[:, i, j] = (xs.start + col - x0, ys.start + row - y0)
        logits = LOGIT_GAIN * (ncc - LOGIT_CENTRE)
        if self.config.family == "siamban":
            return self._ban_outputs(logits, shift, target_w, target_h)
        return self._rpn_outputs(logits, shift, target_w, target_h, score_size)

    @staticmethod
    def _ban_outputs(
        logits: np.ndarray, shift: np.ndarray, target_w: float, target_h: float
    ) -> tuple[np.ndarray, ...]:
        cls = np.stack([np.zeros_like(logits), logits])[None]
        dx, dy = shift
        loc = np.stack([target_w / 2 - dx, target_h / 2 - dy, target_w / 2 + dx, target_h / 2 + dy])[None]
        return cls.astype(np.float32), loc.astype(np.float32)

    def _rpn_outputs(
        self, logits: np.ndarray, shift: np.ndarray, target_w: float, target_h: float, score_size: int
    ) -> tuple[np.ndarray, ...]:
        anchor_config = rpn_anchor_config(self.config)
        anchors = rpn_anchors(anchor_config.stride, anchor_config.ratios, anchor_config.scales, score_size)
        count = len(anchors) // (score_size * score_size)
        shapes = anchors.reshape(count, score_size, score_size, 4)[:, :, :, 2:]
        cls = np.concatenate([np.zeros((count, score_size, score_size)), np.repeat(logits[None], count, 0)])
        loc = np.concatenate(
            [
                shift[0][None] / shapes[..., 0],
                shift[1][None] / shapes[..., 1],
                np.log(target_w / shapes[..., 0]),
                np.log(target_h / shapes[..., 1]),
            ]
        )
        return cls[None].astype(np.float32), loc[None].astype(np.float32)
