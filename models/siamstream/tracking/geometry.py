"""Box conventions, context size and the crops fed to the networks.

Image pixels: x to the right, y down, pixel (i, j) covers [j, j+1) x [i, i+1) and integer coordinates
index pixels. Frames are BGR uint8 HxWx3; crops come out HxWx3 here and are transposed for the model by
the caller.

Two reference conventions exist:
- pysot (SiamRPN++, SiamBAN, SiamCAR): box [x, y, w, h] -> centre (x + (w-1)/2, y + (h-1)/2); the output
  box of a centre is [cx - w/2, cy - h/2, w, h]; crops by `crop_patch` (float64 arithmetic).
- siamfc-pytorch: the centre is one pixel up-left, (x - 1 + (w-1)/2, y - 1 + (h-1)/2), kept in float32;
  the output box is [cx + 1 - (w-1)/2, cy + 1 - (h-1)/2, w, h]; crops by `crop_patch_siamfc`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

BoxXYWH = tuple[float, float, float, float]
CXCYWH = tuple[float, float, float, float]

# Side (image px) up to which a crop builds the padded square and resizes it, as pysot's get_subwindow and
# siamfc-pytorch's crop_and_resize do, so that the crops match the references byte for byte. That square
# costs side^2 * 3 bytes: 12 MiB at this side (two 1080p frames), while the box bounds of
# `validation` let a search square reach 2 * instance / exemplar times the frame's longer side (17,000 px,
# 0.9 GB, for AlexNet-RPN on a 4K frame; 30,000 px, 2.8 GB, for ACM's fast-motion crop). The reference
# parity sequences stay far below it, and so does the search square of any target up to about 500 px
# square; a larger one still crops exactly while its square lies inside the frame (a view, no copy).
EXACT_CROP_MAX_SIDE = 2048


def center_from_box(box_xywh: Sequence[float]) -> CXCYWH:
    """pysot: box xywh (image px) -> (cx, cy, w, h) with the centre at x + (w-1)/2."""
    x, y, w, h = (float(v) for v in box_xywh)
    return x + (w - 1) / 2, y + (h - 1) / 2, w, h


def box_from_center(cx: float, cy: float, w: float, h: float) -> BoxXYWH:
    """pysot: (cx, cy, w, h) -> box xywh [cx - w/2, cy - h/2, w, h] (image px)."""
    return cx - w / 2, cy - h / 2, w, h


def siamfc_center_from_box(
    box_xywh: Sequence[float],
) -> tuple[np.float32, np.float32, np.float32, np.float32]:
    """siamfc-pytorch: box xywh -> float32 (cx, cy, w, h) with the centre at x - 1 + (w-1)/2."""
    x, y, w, h = (float(v) for v in box_xywh)
    return np.float32(x - 1 + (w - 1) / 2), np.float32(y - 1 + (h - 1) / 2), np.float32(w), np.float32(h)


def siamfc_box_from_center(
    cx: float | np.float32, cy: float | np.float32, w: float | np.float32, h: float | np.float32
) -> BoxXYWH:
    """siamfc-pytorch: (cx, cy, w, h) -> box xywh [cx + 1 - (w-1)/2, cy + 1 - (h-1)/2, w, h], computed in
    float32 like the reference (the inputs are float32 values)."""
    cx32, cy32, w32, h32 = np.float32(cx), np.float32(cy), np.float32(w), np.float32(h)
    x = cx32 + 1 - (w32 - 1) / 2
    y = cy32 + 1 - (h32 - 1) / 2
    return float(x), float(y), float(w32), float(h32)


def context_size(w: float, h: float, context_amount: float) -> float:
    """Side (image px) of the square template region: sqrt((w + a(w+h)) * (h + a(w+h))), unrounded.

    pysot rounds it (Python `round`, half to even) for the template crop and uses it unrounded when
    tracking.
    """
    w_z = w + context_amount * (w + h)
    h_z = h + context_amount * (w + h)
    return math.sqrt(w_z * h_z)


def channel_average(frame: np.ndarray) -> np.ndarray:
    """float64 [3] per-channel mean of a uint8 frame, bit-identical to `np.mean(frame, axis=(0, 1))`.

    The channel sums are integers below 2^53, hence exact in float64 whatever the summation order, and
    both divide once by the pixel count; `cv2.sumElems` is about 100x faster than `np.mean` here.
    """
    channel_sums = np.array(cv2.sumElems(frame), dtype=np.float64)[:3]
    return channel_sums / (frame.shape[0] * frame.shape[1])


def pysot_pad_value(channel_average: Sequence[float]) -> np.ndarray:
    """pysot pads with the first-frame mean cast to uint8, i.e. truncated."""
    return np.asarray(channel_average, dtype=np.float64).astype(np.uint8)


def siamfc_pad_value(channel_average: Sequence[float]) -> np.ndarray:
    """siamfc-pytorch pads through `cv2.copyMakeBorder`, which rounds the mean (half to even)."""
    return np.clip(np.rint(np.asarray(channel_average, dtype=np.float64)), 0, 255).astype(np.uint8)


def square_region(frame: np.ndarray, x0: int, y0: int, side: int, pad_value: np.ndarray) -> np.ndarray:
    """Pixels [y0, y0+side) x [x0, x0+side) of `frame`, with `pad_value` where they fall outside it.

    Inside the image this is a view of `frame` (no copy); otherwise only the side x side patch is
    built (the visible part bordered with the uint8 `pad_value`), never the padded frame.
    """
    height, width = frame.shape[:2]
    x1, y1 = x0 + side, y0 + side
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        return frame[y0:y1, x0:x1]
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if ix0 >= ix1 or iy0 >= iy1:
        return np.full((side, side, frame.shape[2]), pad_value, dtype=np.uint8)
    return cv2.copyMakeBorder(
        frame[iy0:iy1, ix0:ix1],
        iy0 - y0,
        y1 - iy1,
        ix0 - x0,
        x1 - ix1,
        cv2.BORDER_CONSTANT,
        value=[int(v) for v in pad_value],
    )


def resized_square(
    frame: np.ndarray, x0: int, y0: int, side: int, out_size: int, pad_value: np.ndarray
) -> np.ndarray:
    """`square_region(frame, x0, y0, side, pad_value)` resized (bilinear) to out_size x out_size.

    Up to `EXACT_CROP_MAX_SIDE` (or when the square lies inside the frame, a view that costs nothing) this
    is the references' pad-then-`cv2.resize`, byte for byte. Beyond it the padded square is never built:
    `cv2.warpAffine` samples the frame at the points `cv2.resize` would sample the square (destination
    pixel d -> x0 + (d + 0.5) * side / out_size - 0.5, likewise in y), reading `pad_value` outside the
    frame, so only the out_size^2 output is allocated. warpAffine places each sample to 1/32 px, where
    resize weights it to 1/2048: the paths differ by a grey level on camera images and by at most 8
    (255 / 64 on each axis) between neighbours as different as pixel noise.
    """
    height, width = frame.shape[:2]
    inside = x0 >= 0 and y0 >= 0 and x0 + side <= width and y0 + side <= height
    if inside or side <= max(EXACT_CROP_MAX_SIDE, out_size):
        patch = square_region(frame, x0, y0, side, pad_value)
        return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    scale = side / out_size
    destination_to_frame = np.array(
        [[scale, 0.0, x0 + 0.5 * scale - 0.5], [0.0, scale, y0 + 0.5 * scale - 0.5]], dtype=np.float64
    )
    return cv2.warpAffine(
        frame,
        destination_to_frame,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=[int(v) for v in pad_value],
    )


def crop_patch(
    frame: np.ndarray,
    center: tuple[float, float],
    model_size: int,
    original_size: int,
    channel_average: Sequence[float],
) -> np.ndarray:
    """pysot `get_subwindow`: the square of side `original_size` (image px) around `center` (cx, cy),
    resized (bilinear) to `model_size` only when the sides differ. Returns uint8 model_size^2 x 3.

    The square starts at floor(c - (side+1)/2 + 0.5) on each axis; pixels outside the image take the
    truncated first-frame mean. The result may be a view of `frame` when no resize is needed. A padded
    square over `EXACT_CROP_MAX_SIDE` is sampled without being built (`resized_square`).
    """
    half = (original_size + 1) / 2
    x0 = math.floor(center[0] - half + 0.5)
    y0 = math.floor(center[1] - half + 0.5)
    pad_value = pysot_pad_value(channel_average)
    if model_size == original_size:
        return square_region(frame, x0, y0, original_size, pad_value)
    return resized_square(frame, x0, y0, original_size, model_size, pad_value)


def crop_patch_siamfc(
    frame: np.ndarray,
    center: tuple[np.float32, np.float32],
    size: float,
    out_size: int,
    channel_average: Sequence[float],
) -> np.ndarray:
    """siamfc-pytorch `crop_and_resize`: the square of side round(size) (image px) around the float32
    `center` (cx, cy), always resized (bilinear) to `out_size`. Returns uint8 out_size^2 x 3.

    The square starts at round(c - (side-1)/2) (float32, half to even); outside pixels take the rounded
    first-frame mean. A padded square over `EXACT_CROP_MAX_SIDE` is sampled without being built
    (`resized_square`).
    """
    side = round(size)
    half = np.float32((side - 1) / 2)
    x0 = int(np.round(np.float32(center[0]) - half))
    y0 = int(np.round(np.float32(center[1]) - half))
    return resized_square(frame, x0, y0, side, out_size, siamfc_pad_value(channel_average))


def to_model_layout(patches: Sequence[np.ndarray]) -> np.ndarray:
    """Stack HxWx3 crops into one contiguous uint8 [K, 3, S, S] batch for the model."""
    return np.ascontiguousarray(np.stack(patches).transpose(0, 3, 1, 2))
