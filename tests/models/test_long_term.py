"""Long-term mode (`LongTermConfig`, `tracking.long_term`): the lost search's plan, its decoding, and a
target that leaves and comes back far away found again by the template-matching stand-in network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from siamstream.cli.main import build_parser
from siamstream.config import LongTermConfig, StatusConfig, TemplateUpdateConfig, TrackerConfig, merge_fields
from siamstream.evaluation.metrics import overlap
from siamstream.nn.network import build_network
from siamstream.package import read_package
from siamstream.registry import get_config, list_trackers
from siamstream.tracking.long_term import lost_grid, plan_lost_search
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.search_options import search_sides, second_search_origin
from siamstream.tracking.state import TrackerState, TrackStatus
from siamstream.tracking.step import finish_search, prepare_search
from siamstream.tracking.template_update import plan_template_update
from tests.models.template_matching import TemplateMatchingRunner, textured_frames

TARGET_SIDE = 40


def with_long_term(name: str, **changes: object) -> TrackerConfig:
    """The registered tracker with long-term mode on (`changes`: more of the config, merged)."""
    base = merge_fields(get_config(name).model_dump(mode="json"), {"long_term": {"enabled": True}})
    return TrackerConfig.model_validate(merge_fields(base, changes))


def lost_state(
    config: TrackerConfig, cx: float, cy: float, width: int = 640, height: int = 480
) -> TrackerState:
    """A LOST state of a 40 x 40 target at (cx, cy) on a width x height frame."""
    search_size = None
    if config.family == "siamfc":  # the scale-1 search side of a 40 px target: context 80 px
        search_size = 80.0 * config.crop.instance_size / config.crop.exemplar_size
    return TrackerState(
        family=config.family,
        frame_index=5,
        cx=cx,
        cy=cy,
        w=TARGET_SIDE,
        h=TARGET_SIDE,
        image_width=width,
        image_height=height,
        channel_average=(100.0, 100.0, 100.0),
        search_size=search_size,
        last_score=0.01,
        status=TrackStatus.LOST,
        low_score_count=5,
    )


class TileRunner:
    """`TemplateMatchingRunner`, one crop at a time, for the several crops of a lost search."""

    def __init__(self, config: TrackerConfig) -> None:
        self.matching = TemplateMatchingRunner(config)

    @property
    def crop_sides(self) -> list[int]:
        return self.matching.crop_sides

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        return self.matching.template(crop_z, box_prior)

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        rows = [
            self.matching.search(template_embedding[k : k + 1], crop_x[k : k + 1]) for k in range(len(crop_x))
        ]
        return tuple(np.concatenate(outputs) for outputs in zip(*rows, strict=True))


# --- configuration and record --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_trackers())
def test_every_registered_tracker_has_long_term_mode_off(name: str) -> None:
    config = get_config(name)
    assert config.long_term == LongTermConfig() and not config.long_term.enabled
    assert config.long_term.lost_instance_size not in search_sides(config)


# The keys of the previous release's TrackerConfig, which refuses any other: its replicas and its
# `siamstream export` read the packages and checkpoints this version writes.
PREVIOUS_RELEASE_CONFIG_KEYS = {
    "name",
    "description",
    "backbone",
    "neck",
    "head",
    "crop",
    "hyper",
    "status",
    "template_update",
    "search",
    "weights",
    "input_format",
}


@pytest.mark.parametrize("name", list_trackers())
def test_a_config_without_long_term_mode_dumps_the_keys_of_before(name: str) -> None:
    config = get_config(name)
    dumped = config.model_dump(mode="json")
    assert set(dumped) == PREVIOUS_RELEASE_CONFIG_KEYS
    assert set(json.loads(config.model_dump_json())) == PREVIOUS_RELEASE_CONFIG_KEYS
    assert TrackerConfig.model_validate(dumped) == config


def test_a_config_with_long_term_mode_keeps_its_section() -> None:
    config = with_long_term("siamrpn_alex", long_term={"tiles_per_frame": 2})
    dumped = json.loads(config.model_dump_json())
    assert set(dumped) == PREVIOUS_RELEASE_CONFIG_KEYS | {"long_term"}
    assert dumped["long_term"] == {
        "enabled": True,
        "lost_instance_size": 831,
        "window_influence": 0.001,
        "tiles_per_frame": 2,
    }
    assert TrackerConfig.model_validate(dumped) == config


def test_long_term_mode_serves_the_lost_side() -> None:
    assert search_sides(with_long_term("siamrpn_alex")) == (287, 831)
    assert search_sides(with_long_term("siamfc_alexnet")) == (255, 831)


@pytest.mark.parametrize(
    ("name", "long_term", "message"),
    [
        ("siamban_acm_small", {}, "fast-motion rule"),
        ("siamrpn_alex", {"lost_instance_size": 287}, "must exceed the instance size 287"),
        ("siamrpn_alex", {"lost_instance_size": 835}, "multiple of the stride 8"),
        # Five 831 tiles in one inference call: about 50 normal searches, past the service's 5 s timeout.
        ("siamrpn_alex", {"tiles_per_frame": 5}, "less than or equal to 4"),
    ],
)
def test_long_term_mode_refused_where_it_cannot_work(name: str, long_term: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        with_long_term(name, long_term={"enabled": True, **long_term})


def test_a_state_outside_the_lost_grid_writes_the_record_of_before() -> None:
    state = lost_state(get_config("siamrpn_alex"), 100.0, 100.0)
    assert "lost_tile" not in state.model_dump_json()
    moved_on = state.model_copy(update={"lost_tile": 2})
    assert '"lost_tile":2' in moved_on.model_dump_json()
    assert TrackerState.model_validate_json(moved_on.model_dump_json()) == moved_on


# --- the plan of a lost search ---------------------------------------------------------------------------


def test_one_crop_around_the_last_position_when_it_reaches_the_whole_frame() -> None:
    # siamrpn_alex: an 831 crop has an 89-cell map (stride 8) reaching 44 * 8 = 352 crop px from its centre,
    # at 127 / 80 crop px per image px for a 40 px target: 221.7 image px.
    config = with_long_term("siamrpn_alex")
    plan = plan_lost_search(config, lost_state(config, 100.0, 100.0, width=320, height=240))
    assert plan.centres == ((100.0, 100.0),)
    assert plan.scale_z == pytest.approx(127 / 80)
    assert plan.image_side == pytest.approx(831 * 80 / 127)
    # 60 px from the left edge, the right edge (260 px away) is out of reach: one tile at the frame's centre.
    plan = plan_lost_search(config, lost_state(config, 60.0, 100.0, width=320, height=240))
    assert plan.centres == ((160.0, 120.0),)


def test_a_larger_frame_is_covered_by_tiles_in_turn_nearest_first() -> None:
    config = with_long_term("siamrpn_alex")
    state = lost_state(config, 100.0, 100.0)  # 640 x 480: a 2 x 2 grid of reach 221.7 px
    visited: list[tuple[float, float]] = []
    for _ in range(5):
        plan = plan_lost_search(config, state)
        visited += plan.centres
        state = state.model_copy(update={"lost_tile": plan.next_tile})
    assert visited == [(160.0, 120.0), (160.0, 360.0), (480.0, 120.0), (480.0, 360.0), (160.0, 120.0)]
    two_a_frame = with_long_term("siamrpn_alex", long_term={"tiles_per_frame": 2})
    plan = plan_lost_search(two_a_frame, lost_state(config, 100.0, 100.0))
    assert plan.centres == ((160.0, 120.0), (160.0, 360.0)) and plan.next_tile == 2


def test_the_grid_reaches_every_centre_of_the_frame() -> None:
    grid = lost_grid(1000, 300, 120.0, (0.0, 0.0))
    assert len(grid) == 5 * 2
    points = np.stack(np.meshgrid(np.linspace(0, 1000, 41), np.linspace(0, 300, 13)), axis=-1).reshape(-1, 2)
    nearest = [min(max(abs(x - cx), abs(y - cy)) for cx, cy in grid) for x, y in points]
    assert max(nearest) <= 120.0


# --- decoding a lost search ------------------------------------------------------------------------------


def siamfc_maps(tiles: int, hit: tuple[int, int, int] | None) -> tuple[np.ndarray]:
    """SiamFC responses [tiles, 1, 89, 89] of an 831 crop: logit -10 everywhere, +10 at cell `hit` (tile,
    row, column)."""
    response = np.full((tiles, 1, 89, 89), -10.0, np.float32)
    if hit is not None:
        tile, row, column = hit
        response[tile, 0, row, column] = 10.0
    return (response,)


def test_siamfc_lost_search_moves_to_a_confident_peak_in_any_tile() -> None:
    config = with_long_term("siamfc_alexnet", long_term={"tiles_per_frame": 4})
    state = lost_state(config, 100.0, 100.0)
    frame = np.zeros((480, 640, 3), np.uint8)
    request = prepare_search(config, state, frame)
    assert request.crops.shape == (4, 3, 831, 831)
    assert request.lost_search is not None and request.lost_search.centres[3] == (480.0, 360.0)
    # Cell (44 + 10, 44 - 5) of the fourth tile: 80 crop px down, 40 left of its centre; a crop px is
    # 80 / 127 image px for a 40 px target (SiamFC: search side 80 * 255 / 127 for 255 crop px).
    found, result = finish_search(config, state, request, siamfc_maps(4, (3, 54, 39)))
    assert (found.cx, found.cy) == pytest.approx((480.0 - 40 * 80 / 127, 360.0 + 80 * 80 / 127), abs=0.5)
    assert (found.w, found.h, found.search_size) == (state.w, state.h, state.search_size)
    assert result.score is not None
    assert result.status is TrackStatus.TRACKING and result.score > 0.99 and found.lost_tile == 0


def siamban_maps(
    tiles: int, hit: tuple[int, int, int], overflowed_tile: int
) -> tuple[np.ndarray, np.ndarray]:
    """SiamBAN outputs (cls [tiles, 2, 57, 57], loc [tiles, 4, 57, 57]) of 511 crops: background
    everywhere but cell `hit` (tile, row, column); every box 63.5 crop px square (a 40 px target at
    127 / 80 crop px per image px); one loc cell of `overflowed_tile` overflowed to +inf."""
    cls = np.zeros((tiles, 2, 57, 57), np.float32)
    cls[:, 0], cls[:, 1] = 10.0, -10.0
    tile, row, column = hit
    cls[tile, :, row, column] = (-10.0, 10.0)
    loc = np.full((tiles, 4, 57, 57), 63.5 / 2, np.float32)
    loc[overflowed_tile, 2, 0, 0] = np.inf
    return cls, loc


def test_an_overflowed_tile_leaves_a_confident_detection_in_another() -> None:
    config = with_long_term("siamban_small", long_term={"lost_instance_size": 511, "tiles_per_frame": 2})
    state = lost_state(config, 100.0, 100.0)
    request = prepare_search(config, state, np.zeros((480, 640, 3), np.uint8))
    assert request.lost_search is not None
    assert request.lost_search.centres == ((320 / 3, 120.0), (320.0, 120.0))
    # Cell (28 + 5, 28 - 10) of the second tile: 40 crop px down, 80 left of its centre, a crop px being
    # 80 / 127 image px; the first tile's box output overflowed.
    found, result = finish_search(config, state, request, siamban_maps(2, (1, 33, 18), overflowed_tile=0))
    assert (found.cx, found.cy) == pytest.approx((320.0 - 80 * 80 / 127, 120.0 + 40 * 80 / 127), abs=1e-3)
    assert (found.w, found.h) == pytest.approx((TARGET_SIDE, TARGET_SIDE))
    assert result.score is not None
    assert result.status is TrackStatus.TRACKING and result.score > 0.99
    # The tile that overflowed is the one with the detection: nothing is taken, the target held.
    held, result = finish_search(config, state, request, siamban_maps(2, (1, 33, 18), overflowed_tile=1))
    assert (held.cx, held.cy) == (state.cx, state.cy) and result.status is TrackStatus.LOST


def test_a_lost_search_without_a_confident_detection_holds_the_target() -> None:
    config = with_long_term("siamfc_alexnet")
    state = lost_state(config, 100.0, 100.0)
    request = prepare_search(config, state, np.zeros((480, 640, 3), np.uint8))
    held, result = finish_search(config, state, request, siamfc_maps(1, None))
    assert (held.cx, held.cy, held.w, held.h) == (state.cx, state.cy, state.w, state.h)
    assert result.status is TrackStatus.LOST and held.lost_tile == 1
    assert result.score == pytest.approx(1 / (1 + math.exp(10)), rel=1e-3)


def test_a_lost_search_is_never_searched_again_nor_updates_the_template() -> None:
    config = with_long_term(
        "siammargin_small",
        search={"one_more_search": True},
        template_update=TemplateUpdateConfig(enabled=True, gate=0.0).model_dump(),
    )
    state = lost_state(config, 100.0, 100.0)
    request = prepare_search(config, state, np.zeros((480, 640, 3), np.uint8))
    assert request.lost_search is not None
    found = state.model_copy(update={"last_score": 0.1, "status": TrackStatus.TRACKING})
    assert second_search_origin(config, state, found) is None
    assert plan_template_update(config, state, request, found, ()) == (found, None)


# --- a target that leaves and comes back far away -------------------------------------------------------


def leave_and_return_frames() -> list[np.ndarray]:
    """The target at (60, 60), gone for 4 frames, then back at (380, 240): 360 px away."""
    return textured_frames(
        [(60, 60), (62, 60), None, None, None, None, (380, 240), (381, 240), (382, 240)], 40
    )


@pytest.mark.parametrize("name", ["siamban_small", "siammargin_small"])
def test_long_term_mode_finds_the_target_where_it_came_back(name: str) -> None:
    # 511 crops reach 141 px at the target's scale: the 480 x 320 frame takes a 2 x 2 grid, one tile a frame.
    changes = {"status": StatusConfig(lost_after=2).model_dump(), "template_update": {"enabled": False}}
    on = with_long_term(name, long_term={"lost_instance_size": 511}, **changes)
    off = on.model_copy(update={"long_term": LongTermConfig()})
    frames = leave_and_return_frames()
    init_box = (60.0, 60.0, 40.0, 40.0)
    truth = np.array([380.0, 240.0, 40.0, 40.0])

    runner = TileRunner(on)
    results = OfflineTracker(on, runner).track_sequence(frames, init_box)
    statuses = [r.status.value for r in results]
    # LOST after the 2nd frame without the target; then lost searches until it is found.
    assert statuses[:4] == ["tracking", "tracking", "uncertain", "lost"]
    found_at = statuses.index("tracking", 4)
    assert 6 <= found_at <= 6 + 3  # the target's tile comes round within the grid's 4 tiles
    assert all(status == "lost" for status in statuses[4:found_at])
    assert runner.crop_sides == [255] * 3 + [511] * (found_at - 3) + [255] * (len(frames) - 1 - found_at)
    for index in range(found_at, len(frames)):
        # The matching finds the target to a crop pixel (80 / 127 image px), on crops placed to the pixel.
        box = np.array(results[index].bbox)
        assert np.abs(box - truth - [index - 6, 0, 0, 0]).max() < 1.5
    # While searching, the box stays where the target was lost.
    assert len({results[index].bbox for index in range(3, found_at)}) == 1

    lost_without = OfflineTracker(off, TemplateMatchingRunner(off)).track_sequence(frames, init_box)
    assert overlap(np.array([r.bbox for r in lost_without[6:]]), np.array([truth] * 3)).max() == 0.0


# --- packaging -------------------------------------------------------------------------------------------


# Backbones whose export (build, checkpoint, script, write) takes about a second on a CPU. MobileNetV2 and
# ResNet-50 (54 M parameters) exports take 10 to 13 s each, two minutes for the ten: slow tests.
CHEAP_BACKBONES = ("alexnet_legacy", "alexnet_siamfc", "small_staged", "small_staged_fused")


def long_term_export_case(tracker: str) -> object:
    """(tracker, the package's search sides), None for a tracker whose own rule refuses long-term mode."""
    config = get_config(tracker)
    refused = getattr(config.hyper, "fast_motion_instance_size", None) is not None
    sides = None if refused else (config.crop.instance_size, 831)
    marks = [] if config.backbone.kind in CHEAP_BACKBONES else [pytest.mark.slow]
    return pytest.param(tracker, sides, marks=marks, id=tracker)


@pytest.mark.parametrize(("tracker", "sides"), [long_term_export_case(name) for name in list_trackers()])
def test_export_switches_long_term_mode_on_in_the_package(tmp_path: Path, tracker: str, sides) -> None:
    config = get_config(tracker)
    checkpoint = tmp_path / f"{tracker}.pth"
    torch.manual_seed(0)
    state = {"tracker": tracker, "config": config.model_dump(mode="json"), "epoch": 1}
    torch.save({**state, "state_dict": build_network(config).state_dict()}, checkpoint)
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / tracker), "--long-term"]
    args = build_parser().parse_args(argv)
    if sides is None:
        with pytest.raises(ValueError, match="fast-motion rule"):
            args.run(args)
        return
    assert args.run(args) == 0
    exported = read_package(tmp_path / tracker).config
    assert exported.long_term == LongTermConfig(enabled=True) and search_sides(exported) == sides
