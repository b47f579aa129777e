"""Cosine (Hann) windows that favour small displacements, float64 like the reference."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def cosine_window(size: int) -> np.ndarray:
    """float64 [size, size] outer product of `numpy.hanning(size)`: 0 on the border, peak at the centre."""
    hanning = np.hanning(size)
    window = np.outer(hanning, hanning)
    window.setflags(write=False)
    return window


@lru_cache(maxsize=16)
def tiled_window(size: int, copies: int) -> np.ndarray:
    """float64 [copies*size*size]: the flattened window repeated once per anchor (anchor-major layout)."""
    window = np.tile(cosine_window(size).ravel(), copies)
    window.setflags(write=False)
    return window


@lru_cache(maxsize=4)
def normalised_window(size: int) -> np.ndarray:
    """float64 [size, size] cosine window divided by its sum (SiamFC)."""
    window = cosine_window(size) / cosine_window(size).sum()
    window.setflags(write=False)
    return window
