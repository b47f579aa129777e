"""SiamMargin's "one more search" and "adaptive search region", the tracking side (`SearchConfig`).

What the slides give: only the two names, as columns of the VOT2019-RT ablation table (large margin,
online update, one more search, adaptive search region: failures 91.3 -> 65.0, EAO 0.287 -> 0.366 with all
four). No rule, threshold or size is given; the definitions below are this library's.

One more search (`one_more_search`, `second_search_below`). After a frame's search, when it scored below
`second_search_below`, the frame is searched a second time: the same crop side and scale (the previous
frame's target size), centred on the first search's estimated centre (clipped to the image), and
post-processed exactly as a first search from that centre would be (window, size penalty and size
smoothing relative to the previous frame's size). The search with the higher score (the foreground
probability of its chosen candidate) is kept, the first on ties: its state, result, and for the template
update its features and region. Why: a target that moved far lands near the crop's border, where the
cosine window pulls the choice back towards the centre and the network sees it cut by the crop's edge;
re-centred, it sits where both are at their best. Only a low-scoring frame pays for the second search, so
a confident frame costs one search as before; raw scores are compared because the two windows are centred
differently. pysot's long-term SiamRPN++ calls a frame below 0.85 unconfident, hence the default.

Adaptive search region (`adaptive_region`, `region_step`, `region_max_steps`, `grow_below`, `normal_at`).
The state carries a growth g in 0..region_max_steps (`TrackerState.search_growth`). A search crops a
square of side `instance_size + g * region_step` crop pixels from an image region of that many times the
context size / exemplar: the scale is the normal crop's (exemplar / context size), so the target looks
the same to the network and the score map grows with the crop, S = (side - exemplar) // stride + 1 + base,
as in pysot's long-term SiamRPN++ (which jumps to LOST_INSTANCE_SIZE 831 when lost). The anchors or
points, the cosine window (over the whole grown map), SiamCAR's upsampling and the template update's
region all follow that map. After each frame (the kept search's score): below `grow_below` g grows one
step up to `region_max_steps`; at least `normal_at` returns to g = 0; in between g is kept. Why steps
rather than one jump: a real-time tracker must keep within its frame budget, and a moderately fast
target is caught after one step of 64 px (8 score cells, a quarter of the normal crop) without paying for
the largest crop; 3 steps bound the worst frame to about 3x the normal crop's pixels (pysot's 831 is
10.6x). Why back at once: the networks are trained on the normal crop, and a larger region brings in more
distractors; once confident, the normal region is the safer one. The window keeps the family's influence
(pysot's long-term tracker drops it to 0.001 when lost): spread over the grown map, a displacement costs
less than on the normal map, while the motion prior still favours the last position over the distractors
the larger region brings in. With both options, the second search has the first's side.

Families: siamrpn (SiamRPN++, SiamMargin, SiamRPN++-ACM, SiamRPN), siamban (SiamBAN, SiamCAN) and
siamcar (SiamCAR, DCFNet) fit: one crop per frame, fully convolutional networks that take any crop side,
post-processing parametrised by the score map's size. SiamFC does not: its scale pyramid already searches
three crops around a search side kept in its state, so one more search is three crops more and a grown
region would have to grow the pyramid. SiamBAN-ACM does not either: its reference has its own search
region rule (`fast_motion_instance_size`), which the options would contradict. `TrackerConfig` refuses
both cases.

Serving: the sides a track may search form a fixed ladder known from the config (`search_sides`), so an
inference backend serves each side of a package (Triton: one model per side, exact dims).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from siamstream.config import SearchConfig, TrackerConfig
from siamstream.tracking.long_term import lost_search_active
from siamstream.tracking.state import TrackerState, TrackResult

if TYPE_CHECKING:  # the step imports this module
    from siamstream.tracking.step import SearchRequest


def search_side(config: TrackerConfig, state: TrackerState) -> int:
    """Side (crop px) of the state's next search crop under the adaptive region: the config's instance
    size grown by the state's steps (the instance size itself when the config does not grow)."""
    if not config.search.adaptive_region:
        return config.crop.instance_size
    return config.crop.instance_size + state.search_growth * config.search.region_step


def grown_config(config: TrackerConfig, state: TrackerState) -> TrackerConfig:
    """`config` with the crop (hence score map) of the state's next search under the adaptive region."""
    side = search_side(config, state)
    if side == config.crop.instance_size:
        return config
    return config.model_copy(update={"crop": config.crop.model_copy(update={"instance_size": side})})


def search_sides(config: TrackerConfig) -> tuple[int, ...]:
    """Every search crop side (crop px) a track of `config` may use, the normal one first: the adaptive
    region's grown sides when the config enables it, SiamBAN-ACM's fast-motion side, the long-term lost
    search's side. What an inference backend must serve for a package of this config."""
    sides = [config.crop.instance_size]
    if config.search.adaptive_region:
        step = config.search.region_step
        sides += [config.crop.instance_size + k * step for k in range(1, config.search.region_max_steps + 1)]
    for extra in (config.hyper.fast_motion_side(), _lost_side(config)):
        if extra is not None and extra not in sides:
            sides.append(extra)
    return tuple(sides)


def _lost_side(config: TrackerConfig) -> int | None:
    return config.long_term.lost_instance_size if config.long_term.enabled else None


def next_growth(settings: SearchConfig, growth: int, score: float) -> int:
    """The growth after a frame scoring `score`: one step more below `grow_below` (at most
    `region_max_steps`), 0 at `normal_at` or more, else kept; always 0 without the adaptive region."""
    if not settings.adaptive_region or score >= settings.normal_at:
        return 0
    if score < settings.grow_below:
        return min(growth + 1, settings.region_max_steps)
    return growth


def second_search_origin(
    config: TrackerConfig, previous: TrackerState, first: TrackerState
) -> TrackerState | None:
    """The state one more search of the frame starts from: `previous` (the state before the frame) with
    its centre moved to the first search's, `first`. None when the config does not ask for one or the
    first search scored at least `second_search_below`, or the frame's search was a lost search (which
    already covered the frame, see `long_term`)."""
    settings = config.search
    if not settings.one_more_search or first.last_score is None or lost_search_active(config, previous):
        return None
    if first.last_score >= settings.second_search_below:
        return None
    return previous.model_copy(update={"cx": first.cx, "cy": first.cy})


@dataclass(frozen=True)
class SearchPass:
    """One search of a frame: the state it searched from (`origin`), its request, the search outputs,
    and the next state and the frame's result they give (`finish_search`)."""

    origin: TrackerState
    request: SearchRequest
    outputs: tuple[np.ndarray, ...]
    state: TrackerState
    result: TrackResult

    @property
    def score(self) -> float:
        """The frame's score under this search."""
        return self.state.last_score if self.state.last_score is not None else 0.0


def better_search(first: SearchPass, second: SearchPass) -> SearchPass:
    """The search that scored higher; the first on ties."""
    return second if second.score > first.score else first
