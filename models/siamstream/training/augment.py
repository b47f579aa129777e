"""Training crops: a square region around the target with pysot's context, randomly shifted and scaled,
then blurred, colour-jittered, greyed or flipped.

Coordinates are continuous (pixel i spans [i, i+1)); a box `xywh` has corners (x, y, x+w, y+h). A crop of
side `side` image px around centre c is resampled to `out_size` px by one affine warp, so image point p
lands at crop point (p - c) * out_size / side + out_size / 2. Boxes in crops are returned xyxy RELATIVE TO
THE CROP CENTRE (the frame of the label functions). Outside the image the crop takes the frame's mean
colour, as pysot's training crops do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from siamstream.tracking.geometry import context_size
from siamstream.training.config import Augmentation


def crop_region(
    frame: np.ndarray, center: tuple[float, float], side: float, out_size: int, pad: np.ndarray
) -> np.ndarray:
    """uint8 out_size x out_size x 3: the square of `side` image px centred on `center` (continuous x, y),
    bilinear, padded with the BGR `pad` colour."""
    scale = out_size / side
    # pixel centres: crop pixel u covers image point (u + 0.5 - out/2) / scale + c - 0.5 as pixel index
    matrix = np.array(
        [
            [scale, 0.0, scale * (0.5 - center[0]) + out_size / 2 - 0.5],
            [0.0, scale, scale * (0.5 - center[1]) + out_size / 2 - 0.5],
        ]
    )
    return cv2.warpAffine(
        frame,
        matrix,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=[float(v) for v in pad],
    )


def box_in_crop(box_xywh: np.ndarray, center: tuple[float, float], side: float, out_size: int) -> np.ndarray:
    """The box as xyxy crop px relative to the crop centre."""
    x, y, w, h = (float(v) for v in box_xywh)
    scale = out_size / side
    return np.array(
        [
            (x - center[0]) * scale,
            (y - center[1]) * scale,
            (x + w - center[0]) * scale,
            (y + h - center[1]) * scale,
        ]
    )


@dataclass(frozen=True)
class TrainingCrop:
    """A crop (uint8 HxWx3 BGR) and the target box in it (xyxy, crop px relative to the centre)."""

    image: np.ndarray
    box: np.ndarray


def sample_crop(
    frame: np.ndarray,
    box_xywh: np.ndarray,
    out_size: int,
    exemplar_size: int,
    context_amount: float,
    augmentation: Augmentation,
    rng: np.random.Generator,
) -> TrainingCrop:
    """pysot training crop: side = context_size(w, h) * out_size / exemplar_size, times a random factor
    in [1 - scale, 1 + scale], the centre moved by up to `shift` output px on each axis, then the
    photometric changes and the flip of `augmentation`."""
    x, y, w, h = (float(v) for v in box_xywh)
    side = context_size(w, h, context_amount) * out_size / exemplar_size
    side *= 1.0 + rng.uniform(-augmentation.scale, augmentation.scale)
    shift = rng.uniform(-augmentation.shift, augmentation.shift, size=2) * side / out_size
    center = (x + w / 2 + shift[0], y + h / 2 + shift[1])
    pad = np.asarray(cv2.mean(frame), dtype=np.float64)[:3]  # cv2.mean gives 4 channels
    image = crop_region(frame, center, side, out_size, pad)
    box = box_in_crop(box_xywh, center, side, out_size)
    image = photometric(image, augmentation, rng)
    if rng.random() < augmentation.flip:
        image = np.ascontiguousarray(image[:, ::-1])
        box = np.array([-box[2], box[1], -box[0], box[3]])
    return TrainingCrop(image=image, box=box)


def photometric(image: np.ndarray, augmentation: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Colour gain jitter (each channel x U(0.8, 1.2)), Gaussian blur (odd kernel 3..9 px, sigma
    U(0.5, 2)) and greyscale, each with its probability; uint8 in and out."""
    if rng.random() < augmentation.color:
        gains = rng.uniform(0.8, 1.2, size=3)
        image = np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8)
    if rng.random() < augmentation.blur:
        kernel = int(rng.choice([3, 5, 7, 9]))
        image = cv2.GaussianBlur(image, (kernel, kernel), float(rng.uniform(0.5, 2.0)))
    if rng.random() < augmentation.grey:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return image
