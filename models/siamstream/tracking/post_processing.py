"""One post-processor per family: everything the tracking step asks of a family, found from the config.

A family's post-processor knows its reference's crop geometry (centre convention, template region, the
crops of a search and their scale), the head outputs its networks give (Contract 1), and how those outputs
become a `TargetEstimate`. The step, the long-term search and the template update ask it, never the
family's name. The post-processors are `rpn.SIAMRPN`, `rpn.SIAMBAN`, `car.SIAMCAR` and `siamfc.SIAMFC`;
each family module registers its own (`register_post_processor`), and `siamstream.tracking` imports them
all, so `post_processor(config)` knows every family once the package is imported. A new family adds its
module and one registration.

`PysotPostProcessor` holds pysot's geometry, shared by the families built on pysot (SiamRPN++, SiamBAN,
SiamCAR); SiamFC's is siamfc-pytorch's (see `geometry` for both conventions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from siamstream.config import Family, FamilyHyper, TrackerConfig
from siamstream.tracking.estimate import TargetEstimate
from siamstream.tracking.geometry import BoxXYWH, box_from_center, center_from_box, context_size, crop_patch
from siamstream.tracking.state import TrackerState

H = TypeVar("H", bound=FamilyHyper)


@dataclass(frozen=True)
class TemplateRegion:
    """Where a track starts: the target (cx, cy, w, h) in image px in the family's centre convention, the
    side (image px, unrounded) of the square the template crop is cut from, and SiamFC's scale-1 search
    side (image px; None for the other families)."""

    cx: float
    cy: float
    w: float
    h: float
    side: float
    search_size: float | None


class PostProcessor(ABC, Generic[H]):
    """What a family does between the frames and the networks: crop geometry, head outputs, decoding.

    Coordinates are image px in the family's centre convention unless a name says crop px; `scale_z` is
    crop px per image px. `config` is the tracker's config as the search sees it (with its grown or
    switched search crop, see `search_options` and `acm`).
    """

    family: ClassVar[Family]
    hyper_type: type[H]
    # Index of the search output the family's networks exponentiate (the box distances of SiamBAN and
    # SiamCAR): a head outside its working range overflows it to +inf, which is a failed frame, not a
    # broken model (`validation.box_overflowed`). None: every output must be finite.
    exponentiated_box_output: ClassVar[int | None] = None

    def hyper(self, config: TrackerConfig) -> H:
        """The config's post-processing hyperparameters, as this family's type."""
        if not isinstance(config.hyper, self.hyper_type):
            raise ValueError(
                f"tracker {config.name!r} has {type(config.hyper).__name__} hyperparameters, not the "
                f"{self.hyper_type.__name__} of family {self.family}"
            )
        return config.hyper

    @abstractmethod
    def template_region(self, config: TrackerConfig, box_xywh: Sequence[float]) -> TemplateRegion:
        """The target and template square of an init box (xywh, image px)."""

    @abstractmethod
    def box_from_target(self, cx: float, cy: float, w: float, h: float) -> BoxXYWH:
        """The box xywh (image px) of a target in the family's centre convention."""

    @abstractmethod
    def crop(
        self,
        frame: np.ndarray,
        centre: tuple[float, float],
        side: float,
        out_side: int,
        channel_average: Sequence[float],
    ) -> np.ndarray:
        """The square of `side` (image px, unrounded) around `centre`, resized to `out_side`, padded with
        the first-frame mean where it leaves the frame: uint8 out_side x out_side x 3."""

    @abstractmethod
    def crop_scale(self, config: TrackerConfig, state: TrackerState) -> float:
        """`scale_z` of the state's next search: crop px per image px of its (scale-1) crop."""

    @abstractmethod
    def search_sides(self, config: TrackerConfig, state: TrackerState) -> tuple[float, ...]:
        """Sides (image px, unrounded) of the squares the state's next search crops, all around the
        target's centre, smallest first; each is resized to the instance size."""

    @abstractmethod
    def context_ratio(self, config: TrackerConfig, previous: TrackerState, current: TrackerState) -> float:
        """The side of the template region at `current` over the one the search from `previous` was
        scaled for (the template update's region, `template_update`)."""

    def lost_search_hyper(self) -> dict[str, Any]:
        """Hyperparameters a lost search (`long_term`) changes besides the window influence: none but
        SiamFC's, which searches each lost crop at one scale."""
        return {}

    @abstractmethod
    def output_shapes(self, config: TrackerConfig, crops: int) -> list[tuple[int, ...]]:
        """Shapes of the search outputs (Contract 1) for `crops` search crops."""

    @abstractmethod
    def estimate(
        self,
        config: TrackerConfig,
        maps: tuple[np.ndarray, ...],
        target: tuple[float, float, float, float],
        scale_z: float,
        image_size: tuple[int, int],
        search_size: float | None,
    ) -> TargetEstimate:
        """The new target from the checked outputs `maps` of one search around `target` (cx, cy, w, h)
        at `scale_z`; `image_size` is (width, height); SiamFC's maps are its scale pyramid around the
        scale-1 side `search_size`."""


class PysotPostProcessor(PostProcessor[H]):
    """pysot's crop geometry: the centre at x + (w-1)/2, the template region `context_size`, one search
    crop of the same scale with the instance size as its side."""

    def template_region(self, config: TrackerConfig, box_xywh: Sequence[float]) -> TemplateRegion:
        cx, cy, w, h = center_from_box(box_xywh)
        return TemplateRegion(cx, cy, w, h, context_size(w, h, config.crop.context_amount), None)

    def box_from_target(self, cx: float, cy: float, w: float, h: float) -> BoxXYWH:
        return box_from_center(cx, cy, w, h)

    def crop(
        self,
        frame: np.ndarray,
        centre: tuple[float, float],
        side: float,
        out_side: int,
        channel_average: Sequence[float],
    ) -> np.ndarray:
        # pysot rounds the square's side (Python `round`, half to even).
        return crop_patch(frame, centre, out_side, max(round(side), 1), channel_average)

    def crop_scale(self, config: TrackerConfig, state: TrackerState) -> float:
        return config.crop.exemplar_size / context_size(state.w, state.h, config.crop.context_amount)

    def search_sides(self, config: TrackerConfig, state: TrackerState) -> tuple[float, ...]:
        side = context_size(state.w, state.h, config.crop.context_amount)
        return (side * (config.crop.instance_size / config.crop.exemplar_size),)

    def context_ratio(self, config: TrackerConfig, previous: TrackerState, current: TrackerState) -> float:
        amount = config.crop.context_amount
        return context_size(current.w, current.h, amount) / context_size(previous.w, previous.h, amount)


_POST_PROCESSORS: dict[Family, PostProcessor[Any]] = {}

P = TypeVar("P", bound=PostProcessor[Any])


def register_post_processor(processor: P) -> P:
    """Register the post-processor of its family; a family has exactly one."""
    if processor.family in _POST_PROCESSORS:
        raise ValueError(f"a post-processor of family {processor.family} is registered twice")
    _POST_PROCESSORS[processor.family] = processor
    return processor


def post_processor(config: TrackerConfig) -> PostProcessor[Any]:
    """The post-processor of the config's family."""
    try:
        return _POST_PROCESSORS[config.family]
    except KeyError:
        raise ValueError(f"tracker {config.name!r}: no post-processor of family {config.family}") from None
