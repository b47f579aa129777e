"""The target estimate a post-processor hands back to the step."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetEstimate:
    """New target after one frame, in image pixels, in the family's centre convention.

    `score` is the frame's confidence in [0, 1]; `search_size` is SiamFC's updated search side; `shift`
    is the centre's move (dx, dy) in image pixels before clipping to the image (SiamRPN++ / SiamBAN).
    """

    cx: float
    cy: float
    w: float
    h: float
    score: float
    search_size: float | None = None
    shift: tuple[float, float] | None = None
