"""Readers for the OTB, LaSOT and GOT-10k directory layouts, giving `Sequence` records.

Layouts (frame files are any of .jpg/.jpeg/.png/.bmp, read in name order):
- OTB: `root/NAME/img/0001.jpg...`, `root/NAME/groundtruth_rect.txt` (comma, tab or space separated).
  Sequences with two targets have `groundtruth_rect.1.txt` and `groundtruth_rect.2.txt` and become
  `NAME-1` and `NAME-2` (pysot's naming). The OTB toolkit's per-sequence start frames (David, Tiger1...)
  are not encoded: a sequence whose image count differs from its box count is rejected.
- LaSOT: `root/CATEGORY/CATEGORY-N/img/00000001.jpg...`, `groundtruth.txt`, `full_occlusion.txt`,
  `out_of_view.txt`; the target is visible where neither flag is set.
- GOT-10k: `root/list.txt` (sequence names, one per line), `root/NAME/00000001.jpg...`,
  `root/NAME/groundtruth.txt`, optionally `absence.label` (1 = absent). In the test split
  `groundtruth.txt` holds only the first box; the other rows become NaN.
Boxes are kept as written (xywh image pixels, no 1-based shift), as the pysot toolkit reads them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np

from siamstream.data.annotations import DatasetError, read_boxes, read_flags
from siamstream.data.frames import FrameSourceError, list_images
from siamstream.data.sequence import Sequence

Layout = Literal["otb", "lasot", "got10k"]

_OTB_TARGET = re.compile(r"groundtruth_rect(?:\.(\d+))?\.txt")


def _images(folder: Path) -> tuple[Path, ...]:
    try:
        return tuple(list_images(folder))
    except FrameSourceError as error:
        raise DatasetError(str(error)) from error


def _check_count(name: str, frames: tuple[Path, ...], boxes: np.ndarray, path: Path) -> None:
    if len(frames) != len(boxes):
        raise DatasetError(f"{path}: {len(boxes)} boxes for {len(frames)} frames of sequence {name!r}")


def read_otb(root: Path) -> list[Sequence]:
    """All sequences of an OTB-layout folder, sorted by name."""
    sequences = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        targets = sorted(
            (match.group(1) or "", path)
            for path in folder.iterdir()
            if (match := _OTB_TARGET.fullmatch(path.name))
        )
        if not targets:
            continue
        frames = _images(folder / "img")
        for index, path in targets:
            name = f"{folder.name}-{index}" if index else folder.name
            boxes = read_boxes(path)
            _check_count(name, frames, boxes, path)
            sequences.append(Sequence(name=name, frame_paths=frames, ground_truth=boxes))
    return sequences


def _lasot_order(folder: Path) -> tuple[str, int, str]:
    # LaSOT numbers sequences within a category: airplane-2 comes before airplane-10.
    number = folder.name.rpartition("-")[2]
    return (folder.parent.name, int(number) if number.isdigit() else 0, folder.name)


def read_lasot(root: Path) -> list[Sequence]:
    """All sequences of a LaSOT-layout folder, by category then sequence number."""
    folders = sorted((path.parent for path in root.glob("*/*/groundtruth.txt")), key=_lasot_order)
    sequences = []
    for folder in folders:
        frames = _images(folder / "img")
        boxes = read_boxes(folder / "groundtruth.txt")
        _check_count(folder.name, frames, boxes, folder / "groundtruth.txt")
        occluded = read_flags(folder / "full_occlusion.txt", len(frames))
        out_of_view = read_flags(folder / "out_of_view.txt", len(frames))
        sequences.append(Sequence(folder.name, frames, boxes, visible=~(occluded | out_of_view)))
    return sequences


def _got10k_names(root: Path) -> list[str]:
    listing = root / "list.txt"
    if listing.is_file():
        return [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return sorted(path.parent.name for path in root.glob("*/groundtruth.txt"))


def read_got10k(root: Path) -> list[Sequence]:
    """All sequences of a GOT-10k-layout folder, in `list.txt` order (name order without one)."""
    sequences = []
    for name in _got10k_names(root):
        folder = root / name
        if not folder.is_dir():
            raise DatasetError(f"{root / 'list.txt'}: lists {name!r}, but {folder} is not a folder")
        frames = _images(folder)
        boxes = read_boxes(folder / "groundtruth.txt")
        if len(boxes) == 1 and len(frames) > 1:
            # Test split: only the initial box is published.
            boxes = np.vstack([boxes, np.full((len(frames) - 1, 4), np.nan)])
        _check_count(name, frames, boxes, folder / "groundtruth.txt")
        absence = folder / "absence.label"
        visible = ~read_flags(absence, len(frames)) if absence.is_file() else None
        sequences.append(Sequence(name, frames, boxes, visible=visible))
    return sequences


_READERS = {"otb": read_otb, "lasot": read_lasot, "got10k": read_got10k}


def detect_layout(root: Path) -> Layout:
    """Guess the layout of a dataset folder from its annotation files."""
    if (root / "list.txt").is_file() or any(root.glob("*/groundtruth.txt")):
        return "got10k"
    if any(root.glob("*/*/groundtruth.txt")):
        return "lasot"
    if any(root.glob("*/groundtruth_rect*.txt")):
        return "otb"
    raise DatasetError(
        f"{root}: unknown dataset layout (looked for list.txt or NAME/groundtruth.txt for GOT-10k, "
        "CATEGORY/NAME/groundtruth.txt for LaSOT, NAME/groundtruth_rect.txt for OTB)"
    )


def open_dataset(root: str | Path, layout: Layout | None = None) -> list[Sequence]:
    """Read every sequence of a benchmark folder; `layout=None` detects it from the files present.

    Raises `DatasetError` (or its subclass `AnnotationError`, naming file and line) when the folder is
    not a dataset of that layout or an annotation is malformed.
    """
    path = Path(root)
    if not path.is_dir():
        raise DatasetError(f"{path}: dataset folder does not exist")
    chosen = layout or detect_layout(path)
    if chosen not in _READERS:
        raise ValueError(f"unknown layout {chosen!r}; known: {', '.join(_READERS)}")
    sequences = _READERS[chosen](path)
    if not sequences:
        raise DatasetError(f"{path}: no sequences in {chosen} layout")
    return sequences
