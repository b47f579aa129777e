"""Write a sequence (file-backed or synthetic) in a benchmark layout or as an mp4 video.

The folder writers produce exactly what `datasets.open_dataset` reads: ground truth is written with
round-trip precision, so a sequence written then read back has the same boxes.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from siamstream.data.annotations import write_boxes
from siamstream.data.sequence import TrackingSequence


def _write_images(sequence: TrackingSequence, folder: Path, digits: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number, frame in enumerate(sequence.frames(), start=1):
        path = folder / f"{number:0{digits}d}.jpg"
        if not cv2.imwrite(str(path), frame):
            raise OSError(f"{path}: cannot write image")


def write_otb(sequence: TrackingSequence, root: str | Path) -> Path:
    """Write `root/NAME/img/0001.jpg...` and `root/NAME/groundtruth_rect.txt`; returns the sequence folder.

    OTB has no absence annotation, so a `visible` mask is not written.
    """
    folder = Path(root) / sequence.name
    _write_images(sequence, folder / "img", digits=4)
    write_boxes(folder / "groundtruth_rect.txt", sequence.ground_truth)
    return folder


def write_got10k(sequence: TrackingSequence, root: str | Path) -> Path:
    """Write `root/NAME/00000001.jpg...`, `groundtruth.txt`, `absence.label` when the sequence has a
    `visible` mask, and add NAME to `root/list.txt` (kept sorted, without duplicates). Returns the
    sequence folder."""
    root = Path(root)
    folder = root / sequence.name
    _write_images(sequence, folder, digits=8)
    write_boxes(folder / "groundtruth.txt", sequence.ground_truth)
    if sequence.visible is not None:
        (folder / "absence.label").write_text("".join(f"{int(not shown)}\n" for shown in sequence.visible))
    listing = root / "list.txt"
    names = set(listing.read_text().split()) if listing.is_file() else set()
    listing.write_text("".join(f"{name}\n" for name in sorted(names | {sequence.name})))
    return folder


def write_mp4(sequence: TrackingSequence, path: str | Path, fps: float = 30.0) -> Path:
    """Encode the frames as an MPEG-4 Part 2 ('mp4v') video at `fps`; returns the path.

    The pip OpenCV wheel cannot encode H.264, hence mp4v. Raises OSError when the writer cannot be
    opened (bad folder or codec). The ground truth is not stored in the video.
    """
    path = Path(path)
    frames = sequence.frames()
    first = next(frames)
    height, width = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: cannot open an mp4v video writer")
    try:
        writer.write(first)
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path
