"""Reading and writing the text files of tracking benchmarks: boxes and per-frame flags.

Box files hold one `x,y,w,h` per line in image pixels (top-left corner, width, height), separated by
commas, tabs or spaces (OTB mixes all three). Values are kept as written: OTB's 1-based MATLAB
coordinates are not shifted, exactly as the pysot toolkit reads them, so results and ground truth stay in
one convention. `nan` is accepted (some annotations mark unknown boxes that way).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_SEPARATORS = re.compile(r"[,\s]+")


class DatasetError(ValueError):
    """A dataset or result directory does not have the expected layout or contents."""


class AnnotationError(DatasetError):
    """A line of an annotation file cannot be parsed; the message names the file and line."""


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read annotation file ({error.strerror})") from error
    return text.rstrip().splitlines()


def read_boxes(path: Path) -> np.ndarray:
    """Boxes of a text file, float64 `(N, 4)` xywh in image pixels, one line per frame.

    Raises `AnnotationError` naming the file and the 1-based line number when a line does not hold
    exactly four numbers, and `DatasetError` when the file is missing or empty.
    """
    rows = []
    for number, line in enumerate(_lines(path), start=1):
        fields = _SEPARATORS.split(line.strip())
        try:
            values = [float(field) for field in fields]
        except ValueError:
            values = []
        if len(values) != 4:
            raise AnnotationError(
                f"{path}, line {number}: expected 4 numbers x,y,w,h separated by commas, tabs or spaces, "
                f"got {line!r}"
            )
        rows.append(values)
    if not rows:
        raise DatasetError(f"{path}: no boxes")
    return np.asarray(rows, dtype=np.float64)


def read_flags(path: Path, count: int) -> np.ndarray:
    """Per-frame 0/1 flags as a bool array of length `count`.

    Accepts LaSOT's layout (all flags on one comma-separated line) and GOT-10k's (one flag per line).
    Raises `AnnotationError` naming the file and line for a value other than 0 or 1, and for a flag count
    different from `count` (the number of frames).
    """
    flags: list[bool] = []
    for number, line in enumerate(_lines(path), start=1):
        for field in _SEPARATORS.split(line.strip()):
            if field not in ("0", "1"):
                raise AnnotationError(f"{path}, line {number}: expected flags 0 or 1, got {field!r}")
            flags.append(field == "1")
    if len(flags) != count:
        raise AnnotationError(f"{path}: {len(flags)} flags for {count} frames")
    return np.asarray(flags, dtype=bool)


def write_boxes(path: Path, boxes: np.ndarray) -> None:
    """Write `(N, 4)` xywh boxes one per line, comma-separated, in the pysot/OTB text layout.

    Each value is written as Python's shortest round-trip `repr`, so reading the file back gives the
    same floats.
    """
    lines = (",".join(repr(float(value)) for value in box) + "\n" for box in boxes)
    path.write_text("".join(lines))
