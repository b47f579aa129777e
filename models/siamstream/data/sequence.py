"""The sequence record shared by dataset readers, the synthetic generator, writers and evaluation.

Ground truth is float64 `(N, 4)` xywh in image pixels, one row per frame; a row of NaN means the box is
not known for that frame (for example after the first frame of a GOT-10k test sequence). `visible`, when
given, is a bool `(N,)` mask that is False where the dataset marks the target absent (LaSOT full
occlusion or out of view, GOT-10k absence); evaluation leaves those frames out. `attributes` are the
sequence's challenge tags (OTB's "IV", "OCC"..., GOT-10k's classes, the synthetic challenges), reported
per tag by evaluation; `image_size` is `(width, height)` in pixels when known without decoding a frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from siamstream.data.frames import read_frame


class TrackingSequence(Protocol):
    """What evaluation and the writers need from a sequence, file-backed or generated."""

    @property
    def name(self) -> str: ...

    @property
    def ground_truth(self) -> np.ndarray: ...

    @property
    def visible(self) -> np.ndarray | None: ...

    @property
    def init_box(self) -> np.ndarray: ...

    @property
    def attributes(self) -> tuple[str, ...]: ...

    @property
    def image_size(self) -> tuple[int, int] | None: ...

    def frames(self) -> Iterator[np.ndarray]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True, eq=False)
class Sequence:
    """A benchmark sequence stored as image files, with its ground truth."""

    name: str
    frame_paths: tuple[Path, ...]
    ground_truth: np.ndarray
    visible: np.ndarray | None = None
    attributes: tuple[str, ...] = ()
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        count = len(self.frame_paths)
        if self.ground_truth.shape != (count, 4):
            raise ValueError(
                f"sequence {self.name!r}: ground truth of shape {self.ground_truth.shape} for {count} frames"
            )
        if self.visible is not None and self.visible.shape != (count,):
            raise ValueError(f"sequence {self.name!r}: visible mask of shape {self.visible.shape}")

    def __len__(self) -> int:
        return len(self.frame_paths)

    @property
    def init_box(self) -> np.ndarray:
        """The box that starts tracking: ground truth of frame 0, xywh image pixels."""
        return self.ground_truth[0]

    def frames(self) -> Iterator[np.ndarray]:
        """Decode the frames lazily, in order, as BGR uint8 `HxWx3`."""
        return (read_frame(path) for path in self.frame_paths)

    def frame(self, index: int) -> np.ndarray:
        """Decode frame `index` (0-based) as BGR uint8 `HxWx3`."""
        return read_frame(self.frame_paths[index])
