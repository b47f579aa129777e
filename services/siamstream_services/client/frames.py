"""Encoding of numpy frames for the wire: JPEG (lossy, small) or PNG (lossless)."""

from __future__ import annotations

from enum import StrEnum

import cv2
import numpy as np

# OpenCV's own default; at 640x480 it keeps a frame around 50-100 KB with no visible blocking.
DEFAULT_JPEG_QUALITY = 95


class ImageFormat(StrEnum):
    """How a client sends numpy frames."""

    JPEG = "jpeg"
    PNG = "png"


def encode_frame(
    frame: np.ndarray, image_format: ImageFormat = ImageFormat.JPEG, jpeg_quality: int = DEFAULT_JPEG_QUALITY
) -> bytes:
    """A BGR uint8 `HxWx3` (or gray `HxW`) frame as a complete JPEG or PNG file.

    `jpeg_quality` is OpenCV's 0-100 scale; it is ignored for PNG, which decodes to exactly `frame`.
    """
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
        raise ValueError(f"frames must be uint8 HxW or HxWx3 arrays, got {frame.dtype} {frame.shape}")
    if not 0 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 0..100, got {jpeg_quality}")
    if image_format is ImageFormat.JPEG:
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    else:
        ok, data = cv2.imencode(".png", frame)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {frame.shape} frame as {image_format.value}")
    return data.tobytes()
