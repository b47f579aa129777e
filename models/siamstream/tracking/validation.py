"""Checks at the step boundary: bad frames, boxes and head outputs raise ValueError with a clear message."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from siamstream.config import AnchorConfig, RPNHyper, TrackerConfig
from siamstream.tracking.geometry import context_size
from siamstream.tracking.post_processing import post_processor

# Bounds on a target (image px), checked on the init box and kept by every later state. No real track
# runs into them: the reference trackers clip the box to the frame from the first tracked frame on (SiamFC
# alone lets it grow), so they only refuse boxes that mark nothing a frame shows and would make the crops
# huge (an 8000 px box on a 320x240 frame asked for a 3.5 GB search crop).
# Under a pixel a target has no appearance, and the crop scale exemplar / context overflows.
MIN_TARGET_SIDE = 1.0
# A box may spill past the frame's edges (an object entering the view), up to twice the frame's side.
MAX_TARGET_TO_FRAME = 2.0
# The context region's side (`context_size`: the template crop, before scaling) at most twice the frame's
# longer side. Every box inside the frame meets it at context_amount 0.5, and it bounds a search square to
# 2 * instance / exemplar times the frame's longer side (4.5x for SiamRPN-AlexNet, 8x for ACM's
# fast-motion crop). Such a square is not built when large (`geometry.EXACT_CROP_MAX_SIDE`): the crops
# sample the frame directly, so their memory is bounded by the model's crop whatever the box.
MAX_CONTEXT_TO_FRAME = 2.0


def check_frame(frame: object) -> np.ndarray:
    """A frame must be a BGR uint8 HxWx3 array with H, W >= 1; returns it typed."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must be HxWx3 (BGR), got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got {frame.dtype}")
    return frame


def check_frame_size(frame: np.ndarray, width: int, height: int) -> None:
    """Later frames must have the first frame's size (the crop padding and clipping depend on it)."""
    if frame.shape[:2] != (height, width):
        raise ValueError(
            f"frame is {frame.shape[1]}x{frame.shape[0]} but the track started on a {width}x{height} frame"
        )


def check_box_values(box_xywh: Sequence[float]) -> tuple[float, float, float, float]:
    """A box must be 4 finite numbers [x, y, w, h] with w and h at least `MIN_TARGET_SIDE` (image px).

    The checks that need no frame: a camera's box is checked with them before its first frame exists.
    """
    values = np.asarray(box_xywh, dtype=np.float64).ravel()
    if values.shape != (4,):
        raise ValueError(f"box must be [x, y, w, h], got {len(values)} values")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"box must be finite, got {values.tolist()}")
    x, y, w, h = (float(v) for v in values)
    if w < MIN_TARGET_SIDE or h < MIN_TARGET_SIDE:
        raise ValueError(f"box width and height must be at least {MIN_TARGET_SIDE:g} pixel, got w={w}, h={h}")
    return x, y, w, h


def check_box(
    box_xywh: Sequence[float], width: int, height: int, context_amount: float
) -> tuple[float, float, float, float]:
    """The init box (image px) must pass `check_box_values`, overlap the width x height image, have sides
    at most `MAX_TARGET_TO_FRAME` times the image's, and a context region (at `context_amount`) at most
    `MAX_CONTEXT_TO_FRAME` times the image's longer side."""
    x, y, w, h = check_box_values(box_xywh)
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box {[x, y, w, h]} does not overlap the {width}x{height} frame")
    if w > MAX_TARGET_TO_FRAME * width or h > MAX_TARGET_TO_FRAME * height:
        raise ValueError(
            f"box {w}x{h} is more than {MAX_TARGET_TO_FRAME:g} times the {width}x{height} frame on a side"
        )
    context = context_size(w, h, context_amount)
    if context > MAX_CONTEXT_TO_FRAME * max(width, height):
        raise ValueError(
            f"box {w}x{h} needs a context region of {context:.0f} px, more than {MAX_CONTEXT_TO_FRAME:g} "
            f"times the {width}x{height} frame's longer side"
        )
    return x, y, w, h


def bounded_target_size(
    w: float, h: float, width: int, height: int, context_amount: float
) -> tuple[float, float]:
    """Target size (image px) clamped into the bounds `check_box` puts on an init box in a width x height
    frame: each side into [MIN_TARGET_SIDE, MAX_TARGET_TO_FRAME * frame side], then both scaled down
    together until the context region fits (it is proportional to the size). Unchanged when inside."""
    w = min(max(w, MIN_TARGET_SIDE), MAX_TARGET_TO_FRAME * width)
    h = min(max(h, MIN_TARGET_SIDE), MAX_TARGET_TO_FRAME * height)
    context = context_size(w, h, context_amount)
    limit = MAX_CONTEXT_TO_FRAME * max(width, height)
    if context > limit:
        w, h = w * limit / context, h * limit / context
    return w, h


def rpn_anchor_config(config: TrackerConfig) -> AnchorConfig:
    """The anchors of a SiamRPN++ tracker (its hyper must be an RPNHyper with anchors)."""
    if not isinstance(config.hyper, RPNHyper) or config.hyper.anchors is None:
        raise ValueError(f"tracker {config.name!r} of family siamrpn has no hyper.anchors")
    return config.hyper.anchors


def expected_output_shapes(config: TrackerConfig, crops: int) -> list[tuple[int, ...]]:
    """Shapes of the search outputs of a family (Contract 1) for `crops` search crops."""
    return post_processor(config).output_shapes(config, crops)


def check_outputs(config: TrackerConfig, outputs: Sequence[np.ndarray], crops: int) -> tuple[np.ndarray, ...]:
    """Search outputs must match the family's count and shapes and be finite (an exponentiated box
    output may also hold +inf, see `PostProcessor.exponentiated_box_output`); returns them as float32."""
    family = post_processor(config)
    expected = family.output_shapes(config, crops)
    if len(outputs) != len(expected):
        raise ValueError(f"{config.family} search gives {len(expected)} outputs, got {len(outputs)}")
    arrays = tuple(np.asarray(o, dtype=np.float32) for o in outputs)
    overflow_allowed = family.exponentiated_box_output
    for index, (array, shape) in enumerate(zip(arrays, expected, strict=True)):
        if array.shape != shape:
            raise ValueError(f"{config.family} search output {index} must be {shape}, got {array.shape}")
        valid = np.isfinite(array) | ((array == np.inf) if index == overflow_allowed else False)
        if not np.all(valid):
            raise ValueError(f"{config.family} search output {index} has non-finite values")
    return arrays


def box_overflowed(config: TrackerConfig, outputs: Sequence[np.ndarray]) -> bool:
    """Whether checked search outputs hold an exponentiated box output that overflowed to +inf."""
    index = post_processor(config).exponentiated_box_output
    return index is not None and bool(np.isinf(outputs[index]).any())
