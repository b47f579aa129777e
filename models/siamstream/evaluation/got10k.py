"""GOT-10k's scores (AO, SR0.50, SR0.75, speed) and its result files, as the official toolkit has them.

Definitions from got-10k/toolkit, `got10k/experiments/got10k.py` (`report`, `_evaluate`, `_record`) and
`got10k/utils/metrics.py` (`rect_iou`):
- Frame 0, the initialisation frame, is never scored: IoUs are those of frames 1..N-1.
- Only frames where the target is visible count (`cover.label > 0`, our `visible`); frames whose ground
  truth is not a box (the test split's) are not scored either.
- Both boxes are first clipped to the image, `(width, height)` from `meta_info.ini`: x to [0, width],
  y to [0, height], w to [0, width - x], h to [0, height - y]; then IoU = intersection / (union + eps),
  eps = float64 machine epsilon, clipped to [0, 1]. Without a known image size boxes are not clipped.
- A tracker run several times (`NAME_001.txt`, `NAME_002.txt`...) has the IoUs of all runs pooled.
- AO = mean IoU; SR_t = fraction of IoUs strictly above t (t = 0.5, 0.75). The benchmark's figures pool
  the frames of every sequence (a sequence weighs by its scored frames), unlike OPE's means over sequences.
- Speed = mean over frames of 1 / seconds, over the positive finite times of `NAME_time.txt`; overall,
  over the times of every sequence pooled (a sequence weighs by its timed frames).
A predicted box that is NaN scores IoU 0 (the toolkit would let the NaN spoil the mean).

Result files (`_record`): `TRACKER/NAME/NAME_001.txt`, the boxes `x,y,w,h` written `%.3f`, and
`TRACKER/NAME/NAME_time.txt`, seconds per frame written `%.8f`. The test-server submission is the zip of
`TRACKER/` with the sequence folders at the top of the archive (the toolkit's `compress`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamstream.evaluation.metrics import overlap, valid_frames

SR_THRESHOLDS = (0.5, 0.75)


def clip_to_image(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """xywh boxes clipped to an image of `(width, height)` pixels, as the toolkit's `rect_iou(bound=...)`."""
    width, height = image_size
    boxes = np.array(boxes, dtype=np.float64)
    boxes[:, 0] = np.clip(boxes[:, 0], 0, width)
    boxes[:, 1] = np.clip(boxes[:, 1], 0, height)
    boxes[:, 2] = np.clip(boxes[:, 2], 0, width - boxes[:, 0])
    boxes[:, 3] = np.clip(boxes[:, 3], 0, height - boxes[:, 1])
    return boxes


def scored_after_first(ground_truth: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """Bool `(N,)`: frames GOT-10k scores (not frame 0; valid ground truth; visible if given)."""
    scored = valid_frames(ground_truth, visible)
    scored[:1] = False
    return scored


def got10k_ious(
    ground_truth: np.ndarray,
    predicted: np.ndarray,
    visible: np.ndarray | None = None,
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """IoUs of one run's scored frames (see `scored_after_first`), boxes clipped to `image_size`."""
    scored = scored_after_first(ground_truth, visible)
    truth, boxes = np.asarray(ground_truth)[scored], np.asarray(predicted, dtype=np.float64)[scored]
    if image_size is not None:
        truth, boxes = clip_to_image(truth, image_size), clip_to_image(boxes, image_size)
    return overlap(boxes, truth, eps=float(np.finfo(np.float64).eps))


@dataclass(frozen=True)
class Got10kScores:
    """AO and success rates over `frames` pooled IoUs (NaN when there are none)."""

    frames: int
    ao: float
    sr50: float
    sr75: float

    @classmethod
    def from_ious(cls, ious: np.ndarray) -> Got10kScores:
        ious = np.asarray(ious, dtype=np.float64)
        if ious.size == 0:
            return cls(0, float("nan"), float("nan"), float("nan"))
        sr50, sr75 = (float(np.mean(ious > threshold)) for threshold in SR_THRESHOLDS)
        return cls(int(ious.size), float(ious.mean()), sr50, sr75)


def frame_speeds(frame_seconds: np.ndarray) -> np.ndarray:
    """The toolkit's per-frame speeds (frames per second): 1/t of the positive finite times, flattened.
    Its speed is their mean, over a sequence or, overall, over every sequence's pooled."""
    seconds = np.asarray(frame_seconds, dtype=np.float64).ravel()
    return 1.0 / seconds[np.isfinite(seconds) & (seconds > 0)]


def write_got10k_run(
    tracker_dir: str | Path, name: str, boxes: np.ndarray, frame_seconds: np.ndarray
) -> Path:
    """Write a deterministic tracker's one run: `tracker_dir/NAME/NAME_001.txt` and `NAME_time.txt`.

    `boxes` are `(N, 4)` xywh in image pixels (row 0 the initial box), `frame_seconds` `(N,)` the time
    each frame took. Returns the sequence folder.
    """
    folder = Path(tracker_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / f"{name}_001.txt", np.asarray(boxes), fmt="%.3f", delimiter=",")
    np.savetxt(folder / f"{name}_time.txt", np.asarray(frame_seconds)[:, None], fmt="%.8f", delimiter=",")
    return folder


def zip_submission(tracker_dir: str | Path) -> Path:
    """Zip `tracker_dir` into `tracker_dir.zip` beside it, sequence folders at the archive's top level,
    the layout the GOT-10k evaluation server takes."""
    folder = Path(tracker_dir)
    return Path(shutil.make_archive(str(folder), "zip", root_dir=folder))
