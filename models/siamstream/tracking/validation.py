"""Checks at the step boundary: bad frames, boxes and head outputs raise ValueError with a clear message."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from siamstream.config import AnchorConfig, Family, RPNHyper, TrackerConfig


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


def check_box(box_xywh: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """The init box must be 4 finite numbers, w and h > 0, overlapping the width x height image."""
    values = np.asarray(box_xywh, dtype=np.float64).ravel()
    if values.shape != (4,):
        raise ValueError(f"box must be [x, y, w, h], got {len(values)} values")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"box must be finite, got {values.tolist()}")
    x, y, w, h = (float(v) for v in values)
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be > 0, got w={w}, h={h}")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box {[x, y, w, h]} does not overlap the {width}x{height} frame")
    return x, y, w, h


def rpn_anchor_config(config: TrackerConfig) -> AnchorConfig:
    """The anchors of a SiamRPN++ tracker (its hyper must be an RPNHyper with anchors)."""
    if not isinstance(config.hyper, RPNHyper) or config.hyper.anchors is None:
        raise ValueError(f"tracker {config.name!r} of family siamrpn has no hyper.anchors")
    return config.hyper.anchors


def expected_output_shapes(config: TrackerConfig, crops: int) -> list[tuple[int, ...]]:
    """Shapes of the search outputs of a family (Contract 1) for `crops` search crops."""
    s = config.crop.score_size
    family = config.family
    if family is Family.SIAMRPN:
        anchor_config = rpn_anchor_config(config)
        anchors = len(anchor_config.ratios) * len(anchor_config.scales)
        return [(crops, 2 * anchors, s, s), (crops, 4 * anchors, s, s)]
    if family is Family.SIAMBAN:
        return [(crops, 2, s, s), (crops, 4, s, s)]
    if family is Family.SIAMCAR:
        return [(crops, 2, s, s), (crops, 4, s, s), (crops, 1, s, s)]
    return [(crops, 1, s, s)]


def check_outputs(config: TrackerConfig, outputs: Sequence[np.ndarray], crops: int) -> tuple[np.ndarray, ...]:
    """Search outputs must match the family's count and shapes and be finite; returns them as float32."""
    expected = expected_output_shapes(config, crops)
    if len(outputs) != len(expected):
        raise ValueError(f"{config.family} search gives {len(expected)} outputs, got {len(outputs)}")
    arrays = tuple(np.asarray(o, dtype=np.float32) for o in outputs)
    for index, (array, shape) in enumerate(zip(arrays, expected, strict=True)):
        if array.shape != shape:
            raise ValueError(f"{config.family} search output {index} must be {shape}, got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{config.family} search output {index} has non-finite values")
    return arrays
