"""Saved tracking results of one tracker, in pysot's or the GOT-10k toolkit's layout.

- pysot (`results/DATASET/TRACKER/NAME.txt`): one `x,y,w,h` per frame. For results downloaded from the
  OTB site, pysot also looks for `NAME` with a lower-case first letter and `_` for `-` (`jogging_1.txt`),
  or all lower case (`fleetface.txt`); so do we (pysot `toolkit/datasets/otb.py`, `load_tracker`).
- GOT-10k (`results/GOT-10k/TRACKER/NAME/NAME_001.txt`, more runs as `_002`...; `NAME_time.txt` with the
  seconds of each frame, a column per run): the toolkit's `_record`.
The folder given is the tracker's (`.../TRACKER`); its name is the tracker's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamstream.data.annotations import DatasetError, read_boxes


@dataclass(frozen=True, eq=False)
class SavedResult:
    """The runs of one sequence (each `(N, 4)` xywh image pixels) and the seconds per frame if saved."""

    runs: tuple[np.ndarray, ...]
    frame_seconds: np.ndarray | None


def _pysot_names(name: str) -> list[str]:
    site = (name[:1].lower() + name[1:]).replace("-", "_")
    return [f"{name}.txt", f"{site}.txt", f"{site.lower()}.txt"]


def _read_seconds(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        return np.loadtxt(path, delimiter=",", ndmin=1)
    except ValueError as error:
        raise DatasetError(
            f"{path}: expected seconds per frame, comma-separated per run ({error})"
        ) from error


def read_result(tracker_dir: str | Path, name: str) -> SavedResult:
    """The saved result of sequence `name` in `tracker_dir`, in whichever layout holds it.

    Raises `DatasetError` naming the files looked for when there is none, `AnnotationError` naming a
    malformed line.
    """
    folder = Path(tracker_dir)
    runs = sorted((folder / name).glob(f"{name}_[0-9]*.txt"))
    if runs:
        seconds = _read_seconds(folder / name / f"{name}_time.txt")
        return SavedResult(tuple(read_boxes(path) for path in runs), seconds)
    for candidate in _pysot_names(name):
        if (folder / candidate).is_file():
            return SavedResult((read_boxes(folder / candidate),), None)
    raise DatasetError(
        f"{folder}: no result file for sequence {name!r} (looked for {name}/{name}_001.txt and "
        f"{', '.join(dict.fromkeys(_pysot_names(name)))})"
    )
