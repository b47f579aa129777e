"""Deterministic synthetic tracking sequences with exact ground truth.

A sequence is a textured target (smooth colour noise plus hard edges) moving over a textured background.
Everything random is drawn from the spec's seed when the sequence is generated: the textures and every
box of every frame. Frames are rendered lazily from that plan, so the same spec always gives the same
pixels, in any order of access.

The target is drawn with exact sub-pixel coverage: a pixel's weight is the area of the pixel inside the
target box, so the ground truth is the rendered box to the pixel fraction (values are rounded to 0.01 px
when planned, and the rounded boxes are the ones rendered). Conventions: frames BGR uint8 `HxWx3`; boxes
xywh in image pixels with continuous coordinates (pixel `i` spans `[i, i+1)`).

Challenges (each optional, see `Challenge`): fast jumps, scale change, aspect-ratio change, partly
leaving the frame, occlusion by a patch of another texture passing over the target, look-alike
distractors (copies of the target texture, slightly altered) moving nearby under the target, and an
appearance change (the target's texture blends into another texture of another colour).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Typical speed of the smooth motion, as a fraction of the target side per frame: benchmark targets
# rarely move more than a few percent of their size between frames outside fast-motion events.
_SPEED = 0.04
# AR(1) damping of the velocity: keeps motion smooth while letting the direction drift over ~10 frames.
_DAMPING = 0.9
_JUMP = 1.5  # fast-motion jump length, x target side: beyond a tracker's usual search radius
_SCALE_RANGE = 1.6  # the scale challenge spans at least this ratio between largest and smallest
_ASPECT_RANGE = 1.5  # same for the aspect-ratio challenge
_OUT_OF_VIEW_PEAK = 0.6  # fraction of the target outside the frame at the peak of the challenge
_OCCLUDER_WIDTH = 0.7  # occluder width, x target width: covers up to 70% of the target
_TEXTURE_SIDE = 48  # side of the texture images, in pixels, warped to each box
# Appearance change: the blend towards the new texture runs over this span of the sequence (fractions of
# its length), so that the tracker sees the old look, the transition, and a tail of the new look only.
_APPEARANCE_SPAN = (0.15, 0.7)
_APPEARANCE_CAST = 60.0  # largest per-channel shift of the new texture's mean colour, in 0..255 levels


class Challenge(StrEnum):
    """A tracking difficulty the generator can put into a sequence."""

    FAST_MOTION = "fast_motion"
    SCALE_CHANGE = "scale_change"
    ASPECT_CHANGE = "aspect_change"
    OUT_OF_VIEW = "out_of_view"
    OCCLUSION = "occlusion"
    DISTRACTORS = "distractors"
    APPEARANCE_CHANGE = "appearance_change"


class SequenceSpec(BaseModel):
    """Everything that determines a synthetic sequence; equal specs give identical sequences."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        default="synthetic",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Sequence name; also its folder or file name when written out.",
    )
    width: int = Field(default=640, ge=64, le=4096, description="Frame width in pixels.")
    height: int = Field(default=480, ge=64, le=4096, description="Frame height in pixels.")
    length: int = Field(default=60, ge=2, description="Number of frames.")
    seed: int = Field(default=0, ge=0, description="Seed of every random choice of the sequence.")
    challenges: frozenset[Challenge] = Field(default=frozenset(), description="Difficulties to include.")
    target_scale: float = Field(
        default=0.15,
        gt=0.02,
        le=0.25,
        description="Initial sqrt(w*h) of the target as a fraction of the shorter frame side. 0.15 of 480 "
        "is 72 px, a typical benchmark target; at most 0.25 so that scale and aspect changes still fit.",
    )
    distractor_count: int = Field(
        default=2, ge=1, le=8, description="Number of look-alikes drawn with the distractors challenge."
    )


@dataclass(frozen=True, eq=False)
class SyntheticSequence:
    """A generated sequence: its plan (boxes, textures) is computed, its frames are rendered on demand.

    Arrays have one row per frame. `ground_truth` is the visible extent of the target, the target box
    clipped to the frame (what an annotator draws); `target_boxes` is the full box, which may leave the
    frame. `in_view` and `occlusion` are the fractions of the target box inside the frame and covered by
    the occluder. `distractor_boxes` is `(K, N, 4)`; `occluder_boxes` rows are NaN when no occluder is shown.
    `appearance_blend` `(N,)` is the weight of `changed_texture` in the target's look at each frame (all
    zero without the appearance change).
    """

    spec: SequenceSpec
    ground_truth: np.ndarray
    target_boxes: np.ndarray
    in_view: np.ndarray
    occlusion: np.ndarray
    background: np.ndarray
    target_texture: np.ndarray
    distractor_texture: np.ndarray
    distractor_boxes: np.ndarray
    occluder_texture: np.ndarray
    occluder_boxes: np.ndarray
    changed_texture: np.ndarray
    appearance_blend: np.ndarray

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def visible(self) -> np.ndarray | None:
        """Bool `(N,)`: frames whose target is at least partly in view; None when every frame's is (the
        challenges never take it fully out of view nor fully occlude it; `leave_and_return` does)."""
        shown = self.in_view > 0
        return None if shown.all() else shown

    @property
    def init_box(self) -> np.ndarray:
        """The box that starts tracking: ground truth of frame 0, xywh image pixels."""
        return self.ground_truth[0]

    @property
    def attributes(self) -> tuple[str, ...]:
        """The sequence's challenges, by name."""
        return tuple(sorted(self.spec.challenges))

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.spec.width, self.spec.height)

    def __len__(self) -> int:
        return self.spec.length

    def frame(self, index: int) -> np.ndarray:
        """Render frame `index` (0-based) as BGR uint8 `HxWx3`."""
        frame = self.background.copy()
        for boxes in self.distractor_boxes:
            _paste(frame, self.distractor_texture, boxes[index])
        _paste(frame, self.target_look(index), self.target_boxes[index])
        if not np.isnan(self.occluder_boxes[index, 0]):
            _paste(frame, self.occluder_texture, self.occluder_boxes[index])
        return frame

    def frames(self) -> Iterator[np.ndarray]:
        """Render the frames in order, one at a time."""
        return (self.frame(index) for index in range(len(self)))

    def target_look(self, index: int) -> np.ndarray:
        """The target's texture at frame `index`: `target_texture` blended towards `changed_texture`."""
        blend = float(self.appearance_blend[index])
        if blend == 0.0:
            return self.target_texture
        mixed = (1.0 - blend) * self.target_texture + blend * self.changed_texture.astype(np.float32)
        return np.rint(mixed).astype(np.uint8)


def _paste(frame: np.ndarray, texture: np.ndarray, box: np.ndarray) -> None:
    """Draw `texture` stretched over the xywh `box`, weighting each pixel by its area inside the box."""
    x, y, w, h = (float(value) for value in box)
    height, width = frame.shape[:2]
    x0, y0 = max(math.floor(x), 0), max(math.floor(y), 0)
    x1, y1 = min(math.ceil(x + w), width), min(math.ceil(y + h), height)
    if x1 <= x0 or y1 <= y0:
        return
    scale_x, scale_y = w / texture.shape[1], h / texture.shape[0]
    # Maps texture pixel centres to frame pixel centres (pixel i is centred at i + 0.5).
    warp = np.array(
        [[scale_x, 0.0, x - x0 + 0.5 * scale_x - 0.5], [0.0, scale_y, y - y0 + 0.5 * scale_y - 0.5]]
    )
    patch = cv2.warpAffine(
        texture, warp, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    columns, rows = np.arange(x0, x1), np.arange(y0, y1)
    cover_x = np.clip(np.minimum(columns + 1, x + w) - np.maximum(columns, x), 0.0, 1.0)
    cover_y = np.clip(np.minimum(rows + 1, y + h) - np.maximum(rows, y), 0.0, 1.0)
    alpha = np.outer(cover_y, cover_x).astype(np.float32)[..., None]
    region = frame[y0:y1, x0:x1]
    region[:] = np.rint(patch * alpha + region * (1.0 - alpha)).astype(np.uint8)


def _smooth_noise(
    rng: np.random.Generator, height: int, width: int, cells: int, low: float, high: float, channels: int = 3
) -> np.ndarray:
    """Noise varying smoothly over about `cells` blobs along the longer side, float32 `HxWxchannels`."""
    grid_h = max(2, round(cells * height / max(height, width)))
    grid_w = max(2, round(cells * width / max(height, width)))
    coarse = rng.uniform(low, high, (grid_h, grid_w, channels)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)


def _draw_edges(rng: np.random.Generator, image: np.ndarray, count: int, low: float, high: float) -> None:
    """Random lines, rectangle outlines and circles: the hard edges that give a texture structure."""
    height, width = image.shape[:2]
    for _ in range(count):
        colour = tuple(float(value) for value in rng.uniform(low, high, 3))
        thickness = int(rng.integers(1, 4))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        shape = rng.integers(3)
        if shape == 0:
            cv2.line(image, p1, p2, colour, thickness)
        elif shape == 1:
            cv2.rectangle(image, p1, p2, colour, thickness)
        else:
            cv2.circle(image, p1, int(rng.integers(2, max(3, min(width, height) // 3))), colour, thickness)


def _texture(
    rng: np.random.Generator, height: int, width: int, cells: int, low: float, high: float, edges: int
) -> np.ndarray:
    image = _smooth_noise(rng, height, width, cells, low, high)
    _draw_edges(rng, image, edges, low, high)
    return np.clip(image, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    # Mid-range, lower-contrast colours than the target, with grain and edges of its own so that the
    # background is not trivially separable by texture alone. The grain is in brightness only: JPEG
    # subsamples colour, and colour grain would make written frames differ from rendered ones.
    longer = max(height, width)
    image = _smooth_noise(rng, height, width, max(2, longer // 64), 40, 200)  # blobs of about 64 px
    image += _smooth_noise(rng, height, width, max(2, longer // 8), -25, 25, channels=1)  # 8 px grain
    _draw_edges(rng, image, max(4, height * width // 15000), 40, 200)  # 20 edges at 640x480
    return np.clip(image, 0, 255).astype(np.uint8)


def _random_walk(
    rng: np.random.Generator,
    start: np.ndarray,
    speed: float,
    low: np.ndarray,
    high: np.ndarray,
    jumps: dict[int, float],
) -> np.ndarray:
    """Centre path `(N, 2)`: a damped random-walk velocity (px/frame) bouncing off the per-frame bounds
    `low`/`high` `(N, 2)`. At each frame in `jumps` the centre leaps that many pixels, roughly towards
    the middle of the allowed area so that the bounds do not swallow the jump."""
    count = len(low)
    path = np.empty((count, 2))
    position = start.astype(np.float64)
    velocity: np.ndarray = np.zeros(2)
    for index in range(count):
        if index:
            noise = rng.normal(0.0, speed * math.sqrt(1 - _DAMPING**2), 2)
            velocity = _DAMPING * velocity + noise
            position = position + velocity
        if index in jumps:
            towards = (low[index] + high[index]) / 2 - position
            angle = math.atan2(towards[1], towards[0]) + rng.uniform(-math.pi / 3, math.pi / 3)
            position = position + jumps[index] * np.array([math.cos(angle), math.sin(angle)])
        below, above = position < low[index], position > high[index]
        position = np.where(below, 2 * low[index] - position, position)
        position = np.where(above, 2 * high[index] - position, position)
        velocity = np.where(below | above, -velocity, velocity)
        position = np.clip(position, low[index], high[index])
        path[index] = position
    return path


def _oscillation(rng: np.random.Generator, count: int, ratio: float) -> np.ndarray:
    """Log-factor `(N,)`: 0.75 to 1.25 sine cycles over the sequence, random phase.

    Any 0.75 cycle of a sine covers at least 1.7 times its amplitude, so with amplitude log(ratio)/1.7
    the largest exp(result) is at least `ratio` times the smallest (and at most ratio**1.18)."""
    cycles = rng.uniform(0.75, 1.25)
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(2 * math.pi * cycles * np.arange(count) / (count - 1) + phase)
    return math.log(ratio) / 1.7 * wave


def _window(count: int, start: float, stop: float) -> np.ndarray:
    """A smooth bump `(N,)`: sin^2 from 0 to 1 and back over frames start*N..stop*N, zero elsewhere.

    The window spans an even number of frames so that its middle frame reaches exactly 1."""
    first = round(start * (count - 1))
    half = max(1, round((stop - start) * (count - 1) / 2))
    phase = (np.arange(count) - first) / (2 * half)
    return np.where((phase >= 0) & (phase <= 1), np.sin(np.pi * phase) ** 2, 0.0)


def _ramp(count: int, start: float, stop: float) -> np.ndarray:
    """A smooth step `(N,)`: 0 up to frame start*(N-1), sin^2 rise, 1 from frame stop*(N-1) on."""
    first, last = round(start * (count - 1)), max(round(stop * (count - 1)), round(start * (count - 1)) + 1)
    phase = np.clip((np.arange(count) - first) / (last - first), 0.0, 1.0)
    return np.sin(0.5 * np.pi * phase) ** 2


def _changed_texture(rng: np.random.Generator, original: np.ndarray) -> np.ndarray:
    """Another texture of `original`'s size whose mean colour is `original`'s shifted by 0.5 to 1 x
    `_APPEARANCE_CAST` in each channel, towards the side of 0..255 with more room."""
    height, width = original.shape[:2]
    texture = _texture(rng, height, width, 4, 0, 255, edges=6)
    old_mean = original.mean(axis=(0, 1))
    shift = np.where(old_mean < 127.5, 1.0, -1.0) * rng.uniform(0.5, 1.0, 3) * _APPEARANCE_CAST
    recoloured = texture - texture.mean(axis=(0, 1)) + old_mean + shift
    return np.clip(recoloured, 0, 255).astype(np.uint8)


def _leave_frame(centres: np.ndarray, sizes: np.ndarray, frame_size: np.ndarray) -> None:
    """Blend the centres towards the nearest frame edge until `_OUT_OF_VIEW_PEAK` of the target is out.

    The nearest edge (at the peak of the window) keeps the excursion short and its speed plausible."""
    blend = _window(len(centres), 0.2, 0.5)
    peak = int(np.argmax(blend))
    distances = np.concatenate([centres[peak], frame_size - centres[peak]])  # left, top, right, bottom
    nearest = int(np.argmin(distances))
    axis = nearest % 2
    outside = (_OUT_OF_VIEW_PEAK - 0.5) * sizes[:, axis]  # centre this far beyond the edge
    edge = -outside if nearest < 2 else frame_size[axis] + outside
    centres[:, axis] = (1 - blend) * centres[:, axis] + blend * edge


def _occluders(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Occluder boxes `(N, 4)`: a patch sweeping horizontally across the target, NaN outside its window."""
    count = len(centres)
    first, last = round(0.6 * (count - 1)), round(0.9 * (count - 1))
    middle = (first + last) // 2
    occluder_size = sizes[middle] * np.array([_OCCLUDER_WIDTH, 1.4])
    boxes = np.full((count, 4), np.nan)
    for index in range(first, last + 1):
        progress = (index - first) / max(last - first, 1)
        # From just left of the target (touching) to just right of it, through its centre.
        reach = 1.1 * (sizes[index, 0] + occluder_size[0]) / 2
        centre = centres[index] + np.array([(2 * progress - 1) * reach, 0.0])
        boxes[index] = [*(centre - occluder_size / 2), *occluder_size]
    return np.round(boxes, 2)


def _intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area of the overlap of xywh boxes, row by row (0 for NaN rows)."""
    width = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    height = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    return np.nan_to_num(np.clip(width, 0, None) * np.clip(height, 0, None))


def generate_sequence(spec: SequenceSpec) -> SyntheticSequence:
    """Plan a synthetic sequence from its spec; frames are rendered later, on access.

    Appearance, size, motion, distractors and the appearance change draw from separate streams of the
    seed, so one seed gives the same scene (background, textures, starting point) whichever challenges are
    switched on.
    """
    appearance, shape, motion, lookalikes, changes = (
        np.random.default_rng(stream) for stream in np.random.SeedSequence(spec.seed).spawn(5)
    )
    count = spec.length
    frame_size = np.array([spec.width, spec.height], dtype=np.float64)
    side = spec.target_scale * min(spec.width, spec.height)

    log_aspect = np.full(count, shape.uniform(-0.4, 0.4))  # log(w/h)
    log_scale = np.zeros(count)
    if Challenge.SCALE_CHANGE in spec.challenges:
        log_scale += _oscillation(shape, count, _SCALE_RANGE)
    if Challenge.ASPECT_CHANGE in spec.challenges:
        log_aspect += _oscillation(shape, count, _ASPECT_RANGE)
    sizes = side * np.exp(log_scale)[:, None] * np.exp(np.stack([log_aspect, -log_aspect], axis=1) / 2)

    low, high = sizes / 2 + 1, frame_size - sizes / 2 - 1
    start = motion.uniform(low[0], high[0])
    jumps = {}
    if Challenge.FAST_MOTION in spec.challenges:
        frames = motion.choice(
            np.arange(count // 5, max(4 * count // 5, count // 5 + 2)), size=2, replace=False
        )
        jumps = {int(index): _JUMP * side for index in frames}
    centres = _random_walk(motion, start, _SPEED * side, low, high, jumps)
    if Challenge.OUT_OF_VIEW in spec.challenges:
        _leave_frame(centres, sizes, frame_size)
    target_boxes = np.round(np.hstack([centres - sizes / 2, sizes]), 2)

    top_left = np.clip(target_boxes[:, :2], 0, frame_size)
    bottom_right = np.clip(target_boxes[:, :2] + target_boxes[:, 2:], 0, frame_size)
    ground_truth = np.round(np.hstack([top_left, bottom_right - top_left]), 2)
    target_area = target_boxes[:, 2] * target_boxes[:, 3]
    in_view = ground_truth[:, 2] * ground_truth[:, 3] / target_area

    occluder_boxes = np.full((count, 4), np.nan)
    if Challenge.OCCLUSION in spec.challenges:
        occluder_boxes = _occluders(centres, sizes)
    occlusion = _intersection_area(target_boxes, occluder_boxes) / target_area

    tile = _TEXTURE_SIDE
    target_texture = _texture(appearance, tile, tile, 4, 0, 255, edges=6)
    # Look-alike: mostly the target's own texture, a little of another one and a slight colour cast.
    other = _smooth_noise(appearance, tile, tile, 4, 0, 255)
    cast = appearance.uniform(-15, 15, 3).astype(np.float32)
    distractor_texture = np.clip(0.75 * target_texture + 0.25 * other + cast, 0, 255).astype(np.uint8)
    occluder_texture = _texture(appearance, tile, tile, 3, 0, 120, edges=3)

    distractor_boxes: np.ndarray = np.empty((0, count, 4))
    if Challenge.DISTRACTORS in spec.challenges:
        paths = []
        for _ in range(spec.distractor_count):
            size = sizes[0] * lookalikes.uniform(0.85, 1.15)
            d_low, d_high = np.tile(size / 2 + 1, (count, 1)), np.tile(frame_size - size / 2 - 1, (count, 1))
            # Start one to three target sides away: inside a tracker's search region.
            angle = lookalikes.uniform(0, 2 * math.pi)
            offset = lookalikes.uniform(1.5, 3.0) * side * np.array([math.cos(angle), math.sin(angle)])
            d_start = np.clip(centres[0] + offset, d_low[0], d_high[0])
            d_centres = _random_walk(lookalikes, d_start, _SPEED * side, d_low, d_high, {})
            paths.append(np.round(np.hstack([d_centres - size / 2, np.tile(size, (count, 1))]), 2))
        distractor_boxes = np.stack(paths)

    appearance_blend: np.ndarray = np.zeros(count)
    if Challenge.APPEARANCE_CHANGE in spec.challenges:
        appearance_blend = _ramp(count, *_APPEARANCE_SPAN)

    return SyntheticSequence(
        spec=spec,
        ground_truth=ground_truth,
        target_boxes=target_boxes,
        in_view=in_view,
        occlusion=occlusion,
        background=_background(appearance, spec.height, spec.width),
        target_texture=target_texture,
        distractor_texture=distractor_texture,
        distractor_boxes=distractor_boxes,
        occluder_texture=occluder_texture,
        occluder_boxes=occluder_boxes,
        changed_texture=_changed_texture(changes, target_texture),
        appearance_blend=appearance_blend,
    )


# Challenge mixes of a suite, in order: each single challenge, then common combinations. The list and
# the last mix are fixed (they define the `synthetic:N` training data); later challenges are added to a
# whole suite with `synthetic_suite(extra_challenges=...)`.
_SUITE_MIXES: tuple[frozenset[Challenge], ...] = (
    frozenset(),
    frozenset({Challenge.FAST_MOTION}),
    frozenset({Challenge.SCALE_CHANGE, Challenge.ASPECT_CHANGE}),
    frozenset({Challenge.OUT_OF_VIEW}),
    frozenset({Challenge.OCCLUSION}),
    frozenset({Challenge.DISTRACTORS}),
    frozenset({Challenge.FAST_MOTION, Challenge.DISTRACTORS}),
    frozenset({Challenge.SCALE_CHANGE, Challenge.OCCLUSION}),
    frozenset({Challenge.OUT_OF_VIEW, Challenge.ASPECT_CHANGE}),
    frozenset(
        {
            Challenge.FAST_MOTION,
            Challenge.SCALE_CHANGE,
            Challenge.ASPECT_CHANGE,
            Challenge.OUT_OF_VIEW,
            Challenge.OCCLUSION,
            Challenge.DISTRACTORS,
        }
    ),
)


def synthetic_suite(
    count: int = 10,
    seed: int = 0,
    length: int = 60,
    width: int = 640,
    height: int = 480,
    extra_challenges: frozenset[Challenge] = frozenset(),
) -> list[SyntheticSequence]:
    """A small benchmark of `count` sequences cycling through the challenge mixes of `_SUITE_MIXES`,
    each with `extra_challenges` added (e.g. the appearance change on every sequence).

    Sequence `i` is named `synNNN-<challenges>` (`plain` without any) and seeded from `(seed, i)`, so
    a suite is reproducible and its sequences differ from one another. The extra challenges change only
    what they add: a suite with them has the same scenes and motion as the suite without.
    """
    suite = []
    for index in range(count):
        challenges = _SUITE_MIXES[index % len(_SUITE_MIXES)] | extra_challenges
        tag = "-".join(sorted(challenges)) or "plain"
        sequence_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
        spec = SequenceSpec(
            name=f"syn{index:03d}-{tag}",
            width=width,
            height=height,
            length=length,
            seed=sequence_seed,
            challenges=challenges,
        )
        suite.append(generate_sequence(spec))
    return suite


# The strata of the held-out study suite: one challenge (scale and aspect change together) per stratum, so
# that results can be sliced by what made a sequence hard.
STUDY_STRATA: dict[str, frozenset[Challenge]] = {
    "distractors": frozenset({Challenge.DISTRACTORS}),
    "appearance_change": frozenset({Challenge.APPEARANCE_CHANGE}),
    "fast_motion": frozenset({Challenge.FAST_MOTION}),
    "scale_aspect": frozenset({Challenge.SCALE_CHANGE, Challenge.ASPECT_CHANGE}),
    "occlusion": frozenset({Challenge.OCCLUSION}),
    "out_of_view": frozenset({Challenge.OUT_OF_VIEW}),
}


def stratified_suite(
    per_stratum: int, seed: int, length: int = 100, width: int = 640, height: int = 480
) -> list[SyntheticSequence]:
    """`per_stratum` sequences of each stratum of `STUDY_STRATA`, named `<stratum>-NN`.

    Sequence `j` of stratum `k` is seeded from `(seed, k, j)`: a suite is reproducible, its sequences differ
    from one another and from every `synthetic_suite` sequence (whose seeds come from two-number keys).
    """
    suite = []
    for stratum_index, (stratum, challenges) in enumerate(STUDY_STRATA.items()):
        for index in range(per_stratum):
            key = [seed, stratum_index, index]
            spec = SequenceSpec(
                name=f"{stratum}-{index:02d}",
                width=width,
                height=height,
                length=length,
                seed=int(np.random.SeedSequence(key).generate_state(1)[0]),
                challenges=challenges,
            )
            suite.append(generate_sequence(spec))
    return suite


# Leave-and-return sequences: the target is out of view over this span of the sequence (fractions of its
# length), long enough for a tracker to declare it LOST, and comes back at least this far (x the shorter
# frame side) from where it left, beyond any normal search region.
_AWAY_SPAN = (0.3, 0.5)
_RETURN_DISTANCE = 0.5


def leave_and_return(spec: SequenceSpec) -> SyntheticSequence:
    """The sequence of `spec` with the target out of view for a span of frames (`_AWAY_SPAN`) and back,
    from the next frame on, at a random point at least `_RETURN_DISTANCE` x the shorter frame side from
    where it was last seen, moving on as it would have from there.

    While away the target box lies wholly left of the frame: nothing of it is drawn, its ground truth is
    empty and `visible` marks the frame absent. The return point is drawn from a stream of the spec's seed
    that `generate_sequence` does not use, so the scene and the motion before it are the spec's.
    """
    sequence = generate_sequence(spec)
    count = spec.length
    first, back = round(_AWAY_SPAN[0] * (count - 1)), round(_AWAY_SPAN[1] * (count - 1))
    if not 0 < first < back < count:
        raise ValueError(f"a sequence of {count} frames is too short to leave and return")
    boxes = sequence.target_boxes.copy()
    sizes = boxes[:, 2:]
    centres = boxes[:, :2] + sizes / 2
    frame_size = np.array([spec.width, spec.height], dtype=np.float64)
    low, high = sizes / 2 + 1, frame_size - sizes / 2 - 1
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(6)[5])
    last_seen = centres[first - 1]
    minimum = _RETURN_DISTANCE * min(spec.width, spec.height)
    candidates = rng.uniform(low[back], high[back], (256, 2))
    distances = np.hypot(*(candidates - last_seen).T)
    far = candidates[distances >= minimum]
    point = far[0] if len(far) else candidates[int(np.argmax(distances))]
    centres[back:] = np.clip(centres[back:] + (point - centres[back]), low[back:], high[back:])
    boxes[:, :2] = centres - sizes / 2
    boxes[first:back, 0] = -sizes[first:back, 0] - 1.0  # wholly left of the frame
    boxes = np.round(boxes, 2)
    top_left = np.clip(boxes[:, :2], 0, frame_size)
    bottom_right = np.clip(boxes[:, :2] + boxes[:, 2:], 0, frame_size)
    ground_truth = np.round(np.hstack([top_left, bottom_right - top_left]), 2)
    in_view = ground_truth[:, 2] * ground_truth[:, 3] / (boxes[:, 2] * boxes[:, 3])
    occlusion = _intersection_area(boxes, sequence.occluder_boxes) / (boxes[:, 2] * boxes[:, 3])
    return replace(
        sequence, target_boxes=boxes, ground_truth=ground_truth, in_view=in_view, occlusion=occlusion
    )
