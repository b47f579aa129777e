"""Readers for the OTB, LaSOT and GOT-10k directory layouts, giving `Sequence` records.

Layouts (frame files are any of .jpg/.jpeg/.png/.bmp, read in name order):
- OTB: `root/NAME/img/0001.jpg...`, `root/NAME/groundtruth_rect.txt` (comma, tab or space separated).
  Sequences with two targets have `groundtruth_rect.1.txt` and `groundtruth_rect.2.txt` and become
  `NAME-1` and `NAME-2` (pysot's naming); an empty box file (Human4's `.1`) is skipped, as the GOT-10k
  toolkit's OTB reader does. Frames follow the official toolkit, as pysot's `OTB100.json` and the GOT-10k
  toolkit's `datasets/otb.py` encode it: the box files of David, Football1, Freeman3, Freeman4 and Diving
  annotate only part of their image folders (`OTB_ANNOTATED_FRAMES`), and Tiger1 starts at frame 6
  (`OTB_FIRST_FRAME`, the toolkit's "initOmit": its 354 boxes become 349 frames in pysot's json).
  Attributes come from pysot's dataset files when the root holds them (`root/OTB100.json` or any
  `root/*.json` mapping sequence names to records with an `"attr"` list).
- LaSOT: `root/CATEGORY/CATEGORY-N/img/00000001.jpg...`, `groundtruth.txt`, `full_occlusion.txt`,
  `out_of_view.txt`; the target is visible where neither flag is set.
- GOT-10k: `root/SPLIT/list.txt` (sequence names, one per line), `root/SPLIT/NAME/00000001.jpg...`,
  `groundtruth.txt`, `cover.label`, `absence.label`, `meta_info.ini`, for SPLIT in train, val, test; `root`
  may also be one split's folder. The target is visible where `cover.label` is above 0 (the toolkit's
  rule), or, without it, where `absence.label` is 0. `meta_info.ini` gives the image size (`resolution`)
  and the attributes `object_class=...` and `motion_class=...`. In the test split `groundtruth.txt` holds
  only the first box; the other rows become NaN.
Boxes are kept as written (xywh image pixels, no 1-based shift), as the pysot toolkit reads them.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Literal

import numpy as np

from siamstream.data.annotations import DatasetError, read_boxes, read_flags
from siamstream.data.frames import FrameSourceError, list_images
from siamstream.data.sequence import Sequence

Layout = Literal["otb", "lasot", "got10k"]
Got10kSplit = Literal["train", "val", "test"]
GOT10K_SPLITS: tuple[Got10kSplit, ...] = ("train", "val", "test")

# First and last frame numbers (1-based, inclusive) that the box file annotates, for the OTB sequences
# whose image folder holds more frames than boxes: the OTB site's list (David 300:770, Football1 1:74,
# Freeman3 1:460, Freeman4 1:283) and Diving (1:215), as in the GOT-10k toolkit's `datasets/otb.py`.
OTB_ANNOTATED_FRAMES = {
    "David": (300, 770),
    "Football1": (1, 74),
    "Freeman3": (1, 460),
    "Freeman4": (1, 283),
    "Diving": (1, 215),
}
# The OTB toolkit starts Tiger1 at frame 6 (its "initOmit": the target is occluded before), leaving out
# those frames' images and boxes; pysot's OTB100.json does the same (349 frames of 354).
OTB_FIRST_FRAME = {"Tiger1": 6}

_OTB_TARGET = re.compile(r"groundtruth_rect(?:\.(\d+))?\.txt")


def _images(folder: Path) -> tuple[Path, ...]:
    try:
        return tuple(list_images(folder))
    except FrameSourceError as error:
        raise DatasetError(str(error)) from error


def _check_count(name: str, frames: tuple[Path, ...], boxes: np.ndarray, path: Path) -> None:
    if len(frames) != len(boxes):
        raise DatasetError(f"{path}: {len(boxes)} boxes for {len(frames)} frames of sequence {name!r}")


def _frame_number(path: Path) -> int:
    if not path.stem.isdigit():
        raise DatasetError(f"{path}: expected a numbered frame file (0001.jpg...)")
    return int(path.stem)


def _otb_frames(
    folder: str, frames: tuple[Path, ...], boxes: np.ndarray
) -> tuple[tuple[Path, ...], np.ndarray]:
    """The frames and boxes the official toolkit evaluates. Selecting by frame number leaves a folder
    that was already cut to those frames unchanged."""
    if folder in OTB_ANNOTATED_FRAMES and len(frames) != len(boxes):
        first, last = OTB_ANNOTATED_FRAMES[folder]
        frames = tuple(path for path in frames if first <= _frame_number(path) <= last)
    if folder in OTB_FIRST_FRAME and len(frames) == len(boxes):
        kept = [index for index, path in enumerate(frames) if _frame_number(path) >= OTB_FIRST_FRAME[folder]]
        frames, boxes = tuple(frames[index] for index in kept), boxes[kept]
    return frames, boxes


def _pysot_attributes(root: Path) -> dict[str, tuple[str, ...]]:
    """Sequence name -> attributes, from pysot's dataset files in `root` (the first file naming a
    sequence wins); JSON files of another shape are not pysot's and are ignored."""
    attributes: dict[str, tuple[str, ...]] = {}
    for path in sorted(root.glob("*.json")):
        try:
            records = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(records, dict):
            continue
        for name, record in records.items():
            if isinstance(record, dict) and isinstance(record.get("attr"), list):
                attributes.setdefault(name, tuple(str(tag) for tag in record["attr"]))
    return attributes


def read_otb(root: Path) -> list[Sequence]:
    """All sequences of an OTB-layout folder, sorted by name."""
    attributes = _pysot_attributes(root)
    sequences = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        targets = sorted(
            (match.group(1) or "", path)
            for path in folder.iterdir()
            if (match := _OTB_TARGET.fullmatch(path.name)) and path.read_text().strip()
        )
        if not targets:
            continue
        images = _images(folder / "img")
        for index, path in targets:
            name = f"{folder.name}-{index}" if index else folder.name
            frames, boxes = _otb_frames(folder.name, images, read_boxes(path))
            _check_count(name, frames, boxes, path)
            sequences.append(Sequence(name, frames, boxes, attributes=attributes.get(name, ())))
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


def _got10k_meta(path: Path) -> dict[str, str]:
    """The `key: value` lines of a `meta_info.ini` (its first line is the `[METAINFO]` header)."""
    if not path.is_file():
        return {}
    lines = path.read_text().strip().splitlines()[1:]
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _got10k_image_size(meta: dict[str, str], path: Path) -> tuple[int, int] | None:
    if "resolution" not in meta:
        return None
    try:
        width, height = ast.literal_eval(meta["resolution"])
        return (int(width), int(height))
    except (ValueError, SyntaxError, TypeError) as error:
        raise DatasetError(
            f"{path}: resolution must be (width, height), got {meta['resolution']!r}"
        ) from error


def _got10k_visible(folder: Path, count: int) -> np.ndarray | None:
    cover = folder / "cover.label"
    if cover.is_file():
        return _read_levels(cover, count) > 0
    absence = folder / "absence.label"
    return ~read_flags(absence, count) if absence.is_file() else None


def _read_levels(path: Path, count: int) -> np.ndarray:
    """Per-frame integer levels (GOT-10k's `cover.label`, 0..8), one per line."""
    text = path.read_text().split()
    if len(text) != count:
        raise DatasetError(f"{path}: {len(text)} labels for {count} frames")
    try:
        return np.asarray([int(float(value)) for value in text])
    except ValueError as error:
        raise DatasetError(f"{path}: labels must be integers ({error})") from error


def _is_got10k_split(folder: Path) -> bool:
    """A GOT-10k split's folder: a `list.txt`, or sequence folders holding their frames directly (a
    LaSOT category's sequences keep theirs in `img/`, and LaSOT has a category named `train`)."""
    if (folder / "list.txt").is_file():
        return True
    return any(not (path.parent / "img").is_dir() for path in folder.glob("*/groundtruth.txt"))


def got10k_split_folder(root: Path, split: Got10kSplit = "val") -> Path:
    """The folder of one split: `root/SPLIT` when `root` is the dataset's root (it has split folders),
    else `root` itself (a split's folder)."""
    if _is_got10k_split(root):
        return root
    folder = root / split
    if not folder.is_dir():
        present = [name for name in GOT10K_SPLITS if (root / name).is_dir()]
        raise DatasetError(
            f"{root}: no GOT-10k split {split!r} (splits present: {', '.join(present) or 'none'})"
        )
    return folder


def read_got10k(root: Path, split: Got10kSplit = "val") -> list[Sequence]:
    """All sequences of a GOT-10k split, in `list.txt` order (name order without one). `root` is the
    dataset's root (`split` picks the folder) or one split's folder."""
    root = got10k_split_folder(root, split)
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
        meta = _got10k_meta(folder / "meta_info.ini")
        attributes = tuple(f"{key}={meta[key]}" for key in ("object_class", "motion_class") if key in meta)
        sequences.append(
            Sequence(
                name,
                frames,
                boxes,
                visible=_got10k_visible(folder, len(frames)),
                attributes=attributes,
                image_size=_got10k_image_size(meta, folder / "meta_info.ini"),
            )
        )
    return sequences


_READERS = {"otb": read_otb, "lasot": read_lasot, "got10k": read_got10k}


def detect_layout(root: Path) -> Layout:
    """Guess the layout of a dataset folder from its annotation files."""
    if _is_got10k_split(root) or any(_is_got10k_split(root / split) for split in GOT10K_SPLITS):
        return "got10k"
    if any(root.glob("*/*/groundtruth.txt")):
        return "lasot"
    if any(root.glob("*/groundtruth_rect*.txt")):
        return "otb"
    raise DatasetError(
        f"{root}: unknown dataset layout (looked for [SPLIT/]list.txt or [SPLIT/]NAME/groundtruth.txt "
        "for GOT-10k, "
        "CATEGORY/NAME/groundtruth.txt for LaSOT, NAME/groundtruth_rect.txt for OTB)"
    )


def open_dataset(
    root: str | Path, layout: Layout | None = None, split: Got10kSplit = "val"
) -> list[Sequence]:
    """Read every sequence of a benchmark folder; `layout=None` detects it from the files present.
    `split` picks the GOT-10k split when `root` is that dataset's root (the toolkit's default, val).

    Raises `DatasetError` (or its subclass `AnnotationError`, naming file and line) when the folder is
    not a dataset of that layout or an annotation is malformed.
    """
    path = Path(root)
    if not path.is_dir():
        raise DatasetError(f"{path}: dataset folder does not exist")
    chosen = layout or detect_layout(path)
    if chosen not in _READERS:
        raise ValueError(f"unknown layout {chosen!r}; known: {', '.join(_READERS)}")
    sequences = read_got10k(path, split) if chosen == "got10k" else _READERS[chosen](path)
    if not sequences:
        raise DatasetError(f"{path}: no sequences in {chosen} layout")
    return sequences
