"""The scale/aspect change penalty shared by SiamRPN++, SiamBAN and SiamCAR.

Dtypes follow the reference on purpose: predicted sizes are float32 arrays, the target size and
`scale_z` are float64 NumPy scalars, so the ratios (and the penalty) come out float64.
"""

from __future__ import annotations

import numpy as np

# Sizes and ratios: float32 arrays of predicted sizes, or the target's as a float64 NumPy scalar.
Sizes = np.ndarray | np.float64


def change(ratio: Sizes) -> np.ndarray:
    """max(r, 1/r): how far a ratio is from 1, symmetric in r and 1/r."""
    return np.maximum(ratio, 1.0 / ratio)


def padded_size(w: Sizes, h: Sizes) -> Sizes:
    """sqrt((w + p)(h + p)) with p = (w + h)/2: the size of a box with its context."""
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def size_change_penalty(
    pred_w: np.ndarray,
    pred_h: np.ndarray,
    target_w: float,
    target_h: float,
    scale_z: float,
    penalty_k: float,
) -> np.ndarray:
    """exp(-(r_c * s_c - 1) * k) for predicted sizes against the current target.

    `pred_w`, `pred_h` are in the units the reference compares (search-crop pixels for RPN/BAN);
    `target_w`, `target_h` are image pixels, scaled into the crop by `scale_z` (crop px per image px).
    """
    target_w, target_h, scale_z = np.float64(target_w), np.float64(target_h), np.float64(scale_z)
    scale_change = change(padded_size(pred_w, pred_h) / padded_size(target_w * scale_z, target_h * scale_z))
    ratio_change = change((target_w / target_h) / (pred_w / pred_h))
    return np.exp(-(ratio_change * scale_change - 1) * penalty_k)
