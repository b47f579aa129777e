"""Fixed score-map layouts: pysot anchors (SiamRPN++) and SiamBAN points.

Positions are in search-crop pixels relative to the crop centre: score-map cell (i, j) sits at
(ori + stride*j, ori + stride*i) with ori = -(S//2)*stride. Arrays are float32 like the reference and
read-only because they are cached per layout.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def anchor_shapes(
    stride: int, ratios: tuple[float, ...], scales: tuple[float, ...]
) -> list[tuple[float, float]]:
    """(w, h) of each anchor in crop pixels, ratio-major: w = int(sqrt(stride^2/r)) * s, h = int(w0*r) * s.

    The integer truncation is pysot's; stride 8, ratios (0.33, 0.5, 1, 2, 3), scale 8 give
    104x32, 88x40, 64x64, 40x80, 32x96.
    """
    shapes: list[tuple[float, float]] = []
    for ratio in ratios:
        base_w = int(math.sqrt(stride * stride * 1.0 / ratio))
        base_h = int(base_w * ratio)
        shapes.extend((base_w * scale, base_h * scale) for scale in scales)
    return shapes


def grid_offsets(stride: int, score_size: int) -> np.ndarray:
    """Crop-pixel offsets of the score-map columns (and rows) from the crop centre, float32."""
    origin = -(score_size // 2) * stride
    return (origin + stride * np.arange(score_size)).astype(np.float32)


@lru_cache(maxsize=16)
def rpn_anchors(
    stride: int, ratios: tuple[float, ...], scales: tuple[float, ...], score_size: int
) -> np.ndarray:
    """float32 [A*S*S, 4] (cx, cy, w, h), anchor-major: anchor a at cell (i, j) is row a*S*S + i*S + j."""
    shapes = np.asarray(anchor_shapes(stride, ratios, scales), dtype=np.float32)
    offsets = grid_offsets(stride, score_size)
    xx, yy = np.meshgrid(offsets, offsets)
    cells = score_size * score_size
    anchors = np.empty((len(shapes) * cells, 4), dtype=np.float32)
    anchors[:, 0] = np.tile(xx.ravel(), len(shapes))
    anchors[:, 1] = np.tile(yy.ravel(), len(shapes))
    anchors[:, 2:] = np.repeat(shapes, cells, axis=0)
    anchors.setflags(write=False)
    return anchors


@lru_cache(maxsize=16)
def ban_points(stride: int, score_size: int) -> np.ndarray:
    """float32 [S*S, 2] point positions (x, y) of SiamBAN; cell (i, j) is row i*S + j."""
    offsets = grid_offsets(stride, score_size)
    xx, yy = np.meshgrid(offsets, offsets)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    points.setflags(write=False)
    return points
