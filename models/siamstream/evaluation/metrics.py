"""One-pass evaluation (OPE) metrics of one sequence, with the conventions of the pysot toolkit.

Boxes are xywh in image pixels. Conventions (pysot `utils/statistics.py` and `evaluation/ope_benchmark.py`):
- IoU treats a box as the continuous area `[x, x+w) x [y, y+h)`: area `w*h`, no "+1" pixel term.
- Centre error is the Euclidean distance between box centres in pixels. pysot takes centres at
  `x + (w-1)/2`; the `-1/2` cancels in every difference, so `x + w/2` gives identical errors.
- Normalised centre error divides the x offset by the ground-truth width and the y offset by its height.
- Success curve: fraction of frames with IoU strictly above each threshold 0, 0.05, ..., 1 (21 values);
  its AUC is the curve's mean. A frame with no overlap fails even at threshold 0, and IoU 1 fails at
  threshold 1, so a perfect tracker scores 20/21 = 0.952 (as in pysot, the OTB toolkit and GOT-10k's).
- Precision curve: fraction of frames with centre error <= each threshold 0..50 px; reported at 20 px.
- Normalised precision curve: thresholds 0, 0.01, ..., 0.5 (51 values); reported at 0.2, as pysot's
  result table does (LaSOT's paper ranks by the area under this curve instead).
- Frame 0, the initialisation frame, is scored like any other (a tracker returns its init box there).

Frames left out: those whose ground truth is invalid (any NaN/inf, or width or height <= 0) and those
marked absent (`visible` False). They are removed from both the count and the denominator, as the
GOT-10k toolkit and pytracking's `exclude_invalid_frames=True` do. pysot and the OTB/LaSOT MATLAB
toolkits instead keep them in the denominator as failures, so on sequences with absent frames their
figures are lower by up to the absent fraction; on sequences where every frame has a valid box (OTB) the
results are identical. A predicted box that is NaN counts as a failure (IoU 0, infinite error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUCCESS_THRESHOLDS = np.arange(21) * 0.05  # IoU; the same floats as pysot's np.arange(0, 1.05, 0.05)
PRECISION_THRESHOLDS = np.arange(51, dtype=np.float64)  # centre error, pixels
NORM_PRECISION_THRESHOLDS = np.arange(51) / 100  # centre error / ground-truth size
PRECISION_REPORTED_AT = 20.0  # pixels
NORM_PRECISION_REPORTED_AT = 0.2


def _check_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name}: expected boxes of shape (N, 4), got {boxes.shape}")
    return boxes


def overlap(boxes_a: np.ndarray, boxes_b: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """IoU of matching rows of two `(N, 4)` xywh arrays, in [0, 1]; 0 where a box is NaN or degenerate.

    `eps` is added to the union, as GOT-10k's toolkit does; the default 0 divides by the union itself.
    """
    a, b = _check_boxes(boxes_a, "boxes_a"), _check_boxes(boxes_b, "boxes_b")
    width = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    height = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    intersection = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - intersection
    if eps:
        union = union + eps
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersection / union
    return np.nan_to_num(np.clip(iou, 0.0, 1.0), nan=0.0)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return boxes[:, :2] + boxes[:, 2:] / 2


def centre_error(predicted: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """Distance in pixels between the centres of matching xywh rows; inf where a box is NaN."""
    predicted = _check_boxes(predicted, "predicted")
    ground_truth = _check_boxes(ground_truth, "ground_truth")
    offset = _centres(predicted) - _centres(ground_truth)
    return np.nan_to_num(np.hypot(offset[:, 0], offset[:, 1]), nan=np.inf)


def normalised_centre_error(predicted: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """Centre distance with the x offset in ground-truth widths and the y offset in its heights."""
    predicted = _check_boxes(predicted, "predicted")
    ground_truth = _check_boxes(ground_truth, "ground_truth")
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = (_centres(predicted) - _centres(ground_truth)) / ground_truth[:, 2:]
    return np.nan_to_num(np.hypot(offset[:, 0], offset[:, 1]), nan=np.inf)


def valid_frames(ground_truth: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """Bool `(N,)`: frames that are scored (finite ground truth of positive size, and visible if given)."""
    ground_truth = _check_boxes(ground_truth, "ground_truth")
    valid = np.isfinite(ground_truth).all(axis=1) & (ground_truth[:, 2] > 0) & (ground_truth[:, 3] > 0)
    if visible is not None:
        valid &= np.asarray(visible, dtype=bool)
    return valid


def success_curve(ious: np.ndarray) -> np.ndarray:
    """Fraction of frames with IoU > t for each t of `SUCCESS_THRESHOLDS`."""
    return (np.asarray(ious)[:, None] > SUCCESS_THRESHOLDS[None, :]).mean(axis=0)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of frames with error <= t for each t of `thresholds`."""
    return (np.asarray(errors)[:, None] <= np.asarray(thresholds)[None, :]).mean(axis=0)


@dataclass(frozen=True, eq=False)
class SequenceMetrics:
    """OPE curves of one sequence over its `frames` scored frames; curves follow the module's thresholds."""

    frames: int
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray

    @property
    def success_auc(self) -> float:
        """Area under the success curve: its mean over the 21 thresholds."""
        return float(self.success_curve.mean())

    @property
    def precision(self) -> float:
        """Fraction of frames with centre error <= 20 px."""
        return float(self.precision_curve[np.flatnonzero(PRECISION_THRESHOLDS == PRECISION_REPORTED_AT)[0]])

    @property
    def norm_precision(self) -> float:
        """Fraction of frames with normalised centre error <= 0.2."""
        index = np.flatnonzero(np.isclose(NORM_PRECISION_THRESHOLDS, NORM_PRECISION_REPORTED_AT))[0]
        return float(self.norm_precision_curve[index])


def evaluate_sequence(
    ground_truth: np.ndarray, predicted: np.ndarray, visible: np.ndarray | None = None
) -> SequenceMetrics:
    """OPE metrics of predicted xywh boxes against ground truth, both `(N, 4)` in image pixels.

    Frames with invalid ground truth or `visible` False are left out (see the module docstring). Raises
    ValueError when the shapes differ or no frame is left to score.
    """
    ground_truth = _check_boxes(ground_truth, "ground_truth")
    predicted = _check_boxes(predicted, "predicted")
    if predicted.shape != ground_truth.shape:
        raise ValueError(f"{len(predicted)} predicted boxes for {len(ground_truth)} ground-truth boxes")
    scored = valid_frames(ground_truth, visible)
    if not scored.any():
        raise ValueError("no frame has a valid, visible ground-truth box to score against")
    truth, boxes = ground_truth[scored], predicted[scored]
    norm_errors = normalised_centre_error(boxes, truth)
    return SequenceMetrics(
        frames=int(scored.sum()),
        success_curve=success_curve(overlap(boxes, truth)),
        precision_curve=precision_curve(centre_error(boxes, truth), PRECISION_THRESHOLDS),
        norm_precision_curve=precision_curve(norm_errors, NORM_PRECISION_THRESHOLDS),
    )
