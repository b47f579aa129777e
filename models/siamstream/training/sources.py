"""Training data sources: sequences of frames with one target box per frame.

Readers: GOT-10k, LaSOT and OTB (through `siamstream.data.open_dataset`), ImageNet VID and COCO (below),
and the synthetic generator. Each yields `TrainingSequence`s; a frame is usable for a pair when its box
is finite with positive width and height and the target is marked visible.

- ImageNet VID: `Annotations/VID/train/<snippet>/<frame>.xml` (snippets may sit one folder deeper, as in
  `ILSVRC2015_VID_train_0000/<snippet>`), each with `<object><trackid>` and
  `<bndbox><xmin/><ymin/><xmax/><ymax/></bndbox>`; frames `Data/VID/train/<snippet>/<frame>.JPEG`. Every
  (snippet, trackid) becomes one sequence over the frames where that object is annotated.
- COCO: `annotations/instances_<split>.json` and the images under `images/<split>/` or `images/`. Every
  non-crowd annotation with a positive size is a one-frame sequence (template and search crops then come
  from the same image, differing only by augmentation, as in pysot).
Boxes are xywh in image pixels; VID's `xmax - xmin` is kept as the width, as pysot does.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from siamstream.data import (
    DatasetError,
    Sequence,
    SyntheticSequence,
    detect_layout,
    open_dataset,
    synthetic_suite,
)

TrainingLayout = Literal["got10k", "lasot", "otb", "vid", "coco"]


class TrainingSequence(Protocol):
    """What pair sampling needs: frames by index and a usable-box mask."""

    @property
    def name(self) -> str: ...

    def __len__(self) -> int: ...

    def frame(self, index: int) -> np.ndarray: ...

    def box(self, index: int) -> np.ndarray: ...

    def usable(self) -> np.ndarray: ...


def usable_boxes(boxes: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
    """bool (N,): finite boxes with width and height > 0, and visible where a mask is given."""
    ok = np.isfinite(boxes).all(1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    return ok if visible is None else ok & visible


@dataclass(frozen=True, eq=False)
class AnnotatedSequence:
    """A `TrainingSequence` over a sequence record: image files (`siamstream.data.Sequence`) or a synthetic
    sequence rendered on demand; boxes are its ground truth, xywh image px."""

    sequence: Sequence | SyntheticSequence

    @property
    def name(self) -> str:
        return self.sequence.name

    def __len__(self) -> int:
        return len(self.sequence)

    def frame(self, index: int) -> np.ndarray:
        return self.sequence.frame(index)

    def box(self, index: int) -> np.ndarray:
        return self.sequence.ground_truth[index]

    def usable(self) -> np.ndarray:
        return usable_boxes(self.sequence.ground_truth, self.sequence.visible)


def _text(element: ElementTree.Element, path: str, source: Path) -> str:
    found = element.find(path)
    if found is None or found.text is None:
        raise DatasetError(f"{source}: <{path}> missing in an <object>")
    return found.text.strip()


def _vid_objects(xml_path: Path) -> list[tuple[str, np.ndarray]]:
    try:
        root = ElementTree.parse(xml_path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise DatasetError(f"{xml_path}: not a readable VID annotation ({error})") from error
    objects = []
    for element in root.iter("object"):
        track = _text(element, "trackid", xml_path)
        try:
            x0, y0, x1, y1 = (
                float(_text(element, f"bndbox/{key}", xml_path)) for key in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError as error:
            raise DatasetError(f"{xml_path}: non-numeric bndbox ({error})") from error
        objects.append((track, np.array([x0, y0, x1 - x0, y1 - y0])))
    return objects


def read_vid(root: Path) -> list[AnnotatedSequence]:
    """One sequence per (snippet, trackid) of an ImageNet VID training tree, by snippet then track id."""
    annotations = root / "Annotations" / "VID" / "train"
    if not annotations.is_dir():
        raise DatasetError(f"{root}: no Annotations/VID/train folder")
    snippets = sorted({path.parent for path in annotations.rglob("*.xml")})
    sequences = []
    for snippet in snippets:
        relative = snippet.relative_to(annotations)
        tracks: dict[str, tuple[list[Path], list[np.ndarray]]] = {}
        for xml_path in sorted(snippet.glob("*.xml")):
            image = root / "Data" / "VID" / "train" / relative / f"{xml_path.stem}.JPEG"
            for track, box in _vid_objects(xml_path):
                paths, boxes = tracks.setdefault(track, ([], []))
                paths.append(image)
                boxes.append(box)
        for track, (paths, boxes) in sorted(
            tracks.items(), key=lambda item: int(item[0]) if item[0].isdigit() else 0
        ):
            missing = [path for path in paths if not path.is_file()]
            if missing:
                raise DatasetError(f"{missing[0]}: frame of {relative} track {track} does not exist")
            name = f"{relative.as_posix()}-{track}"
            sequences.append(AnnotatedSequence(Sequence(name, tuple(paths), np.array(boxes))))
    return sequences


def read_coco(root: Path) -> list[AnnotatedSequence]:
    """One single-frame sequence per usable annotation of every `annotations/instances_*.json`."""
    files = sorted((root / "annotations").glob("instances_*.json"))
    if not files:
        raise DatasetError(f"{root}: no annotations/instances_<split>.json")
    sequences: list[AnnotatedSequence] = []
    for path in files:
        split = path.stem.removeprefix("instances_")
        try:
            document = json.loads(path.read_text())
            images = {image["id"]: image["file_name"] for image in document["images"]}
            annotations = document["annotations"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DatasetError(f"{path}: not a COCO instances file ({error!r})") from error
        folder = root / "images" / split if (root / "images" / split).is_dir() else root / "images"
        for annotation in annotations:
            try:
                box = np.asarray(annotation["bbox"], dtype=np.float64)
                image = folder / images[annotation["image_id"]]
                crowd = bool(annotation.get("iscrowd", 0))
            except (KeyError, TypeError, ValueError) as error:
                raise DatasetError(f"{path}: malformed annotation {annotation!r} ({error!r})") from error
            if box.shape != (4,):
                raise DatasetError(f"{path}: bbox of annotation {annotation.get('id')} is not x,y,w,h")
            if crowd or box[2] <= 0 or box[3] <= 0:
                continue
            name = f"{split}-{annotation.get('id', len(sequences))}"
            sequences.append(AnnotatedSequence(Sequence(name, (image,), box[None])))
    return sequences


def detect_training_layout(root: Path) -> TrainingLayout:
    """VID or COCO from their annotation folders, else the benchmark layouts of `open_dataset`."""
    if (root / "Annotations" / "VID").is_dir():
        return "vid"
    if any((root / "annotations").glob("instances_*.json")):
        return "coco"
    return detect_layout(root)


def open_training_data(spec: str, layout: TrainingLayout | None = None) -> list[TrainingSequence]:
    """Sequences from a dataset folder, or `synthetic:N` for N generated sequences (320x240, 40 frames).
    A GOT-10k dataset root gives its train split (a split's own folder gives that split).

    Raises `DatasetError` when the folder is not a dataset of the layout or a file is malformed.
    """
    if spec.startswith("synthetic:"):
        count = int(spec.partition(":")[2])
        return [
            AnnotatedSequence(sequence)
            for sequence in synthetic_suite(count, length=40, width=320, height=240)
        ]
    root = Path(spec)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    chosen = layout or detect_training_layout(root)
    sequences: list[TrainingSequence]
    if chosen == "vid":
        sequences = list(read_vid(root))
    elif chosen == "coco":
        sequences = list(read_coco(root))
    else:
        # A GOT-10k root holds train, val and test; training reads train (evaluation defaults to val).
        sequences = [AnnotatedSequence(sequence) for sequence in open_dataset(root, chosen, split="train")]
    if not sum(int(s.usable().any()) for s in sequences):
        raise DatasetError(f"{root}: no sequence with a usable box ({chosen} layout)")
    return sequences
