"""SiamMargin's one more search and adaptive search region (`SearchConfig`, `tracking.search_options`).

The behaviour is checked with a stand-in network that really finds its target (`template_matching`): a
target that jumps beyond the normal search region is found once the region has grown, and one more
search re-centred on the first search's estimate puts the box back on a target the window pulled away.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from siamstream.cli.main import build_parser
from siamstream.config import SearchConfig, TrackerConfig, merge_fields
from siamstream.nn.network import build_network
from siamstream.package import read_package
from siamstream.registry import get_config, list_trackers
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.search_options import (
    SearchPass,
    better_search,
    grown_config,
    next_growth,
    search_sides,
    second_search_origin,
)
from siamstream.tracking.state import TrackerState, TrackResult, TrackStatus
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.tracking.validation import expected_output_shapes
from tests.models.template_matching import TemplateMatchingRunner, textured_frames

TARGET_SIDE = 40
START = (100, 140)
INIT_BOX = (float(START[0]), float(START[1]), float(TARGET_SIDE), float(TARGET_SIDE))
# Trackers on the template-matching stand-in, one per family it covers.
MATCHED_TRACKERS = ("siamban_small", "siammargin_small")
# Backbones whose networks run a grown crop in well under a second on a CPU.
CHEAP_BACKBONES = ("alexnet_legacy", "small_staged", "small_staged_fused")


def score_of(result: TrackResult) -> float:
    """The score of a tracked frame (only the start frame has none)."""
    assert result.score is not None, result
    return result.score


def with_search(name: str, **search: object) -> TrackerConfig:
    """The registered tracker with `search` fields set and no template update (the stand-in has none)."""
    base = get_config(name).model_dump(mode="json")
    return TrackerConfig.model_validate(
        merge_fields(base, {"search": search, "template_update": {"enabled": False}})
    )


def fits(config: TrackerConfig) -> bool:
    return config.family != "siamfc" and getattr(config.hyper, "fast_motion_instance_size", None) is None


def jump_frames(jump: int, count: int) -> list[np.ndarray]:
    """The target at START, then `jump` px to the right of it for `count` frames."""
    return textured_frames([START] + [(START[0] + jump, START[1])] * count, TARGET_SIDE)


def run(
    config: TrackerConfig, frames: list[np.ndarray]
) -> tuple[OfflineTracker, TemplateMatchingRunner, list[TrackResult]]:
    runner = TemplateMatchingRunner(config)
    tracker = OfflineTracker(config, runner)
    results = tracker.track_sequence(frames, INIT_BOX)
    return tracker, runner, results


# --- configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_trackers())
def test_every_registered_tracker_has_both_options_off(name: str) -> None:
    config = get_config(name)
    assert config.search == SearchConfig()
    assert not config.search.one_more_search and not config.search.adaptive_region
    assert search_sides(config)[0] == config.crop.instance_size


@pytest.mark.parametrize("option", ["one_more_search", "adaptive_region"])
@pytest.mark.parametrize(
    ("name", "message"),
    [("siamfc_alexnet", "single-crop family, not SiamFC"), ("siamban_acm_small", "fast-motion rule")],
)
def test_options_are_refused_where_they_do_not_fit(option: str, name: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        with_search(name, **{option: True})


def test_bad_search_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="multiple of the stride 8"):
        with_search("siammargin_small", adaptive_region=True, region_step=60)
    with pytest.raises(ValidationError, match=r"grow_below 0\.9 must be at most normal_at 0\.8"):
        SearchConfig(grow_below=0.9, normal_at=0.8)


def test_search_sides_are_the_ladder_a_backend_serves() -> None:
    assert search_sides(get_config("siammargin_small")) == (255,)
    assert search_sides(with_search("siammargin_small", adaptive_region=True)) == (255, 319, 383, 447)
    assert search_sides(with_search("siamrpn_alex", adaptive_region=True, region_max_steps=1)) == (287, 351)
    assert search_sides(get_config("siamban_acm_small")) == (255, 510)


@pytest.mark.parametrize(
    ("growth", "score", "expected"),
    [(0, 0.5, 1), (1, 0.84, 2), (3, 0.1, 3), (2, 0.85, 2), (2, 0.94, 2), (2, 0.95, 0), (0, 0.99, 0)],
)
def test_growth_rule(growth: int, score: float, expected: int) -> None:
    settings = SearchConfig(adaptive_region=True)
    assert next_growth(settings, growth, score) == expected
    assert next_growth(SearchConfig(), growth, score) == 0


# --- state record ----------------------------------------------------------------------------------------


def test_grown_state_round_trips_and_a_normal_state_writes_todays_record() -> None:
    config = with_search("siammargin_small", adaptive_region=True)
    frame = jump_frames(0, 0)[0]
    state, _ = init_track(config, frame, INIT_BOX)
    assert "search_growth" not in state.model_dump_json()  # the record written before the option existed
    grown = state.model_copy(update={"search_growth": 2})
    assert TrackerState.model_validate_json(grown.model_dump_json()) == grown
    assert '"search_growth":2' in grown.model_dump_json()
    request = prepare_search(config, grown, frame)
    assert request.crops.shape == (1, 3, 383, 383)
    assert request.scale_z == prepare_search(config, state, frame).scale_z  # same scale, larger region


@pytest.mark.parametrize("name", [n for n in list_trackers() if fits(get_config(n))])
def test_options_off_keep_todays_state_records(name: str) -> None:
    config = get_config(name)
    frame = jump_frames(0, 0)[0]
    state, _ = init_track(config, frame, INIT_BOX)
    request = prepare_search(config, state, frame)
    outputs = [np.zeros(shape, np.float32) for shape in expected_output_shapes(config, 1)]
    if config.family != "siamrpn":
        outputs[1][:] = 32  # distances of a 64 px box
    new_state, _ = finish_search(config, state, request, tuple(outputs))
    assert new_state.search_growth == 0 and "search_growth" not in new_state.model_dump()


# --- adaptive search region ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MATCHED_TRACKERS)
def test_adaptive_region_grows_until_it_finds_a_target_that_jumped_out_of_the_search_region(
    name: str,
) -> None:
    # 90 px is 143 crop px at this target's scale (127 / 80): past the normal map's outer cells (96 px).
    jump = 90
    frames = jump_frames(jump, 6)
    truth_x = START[0] + jump

    _, _, plain = run(with_search(name), frames)
    assert all(abs(r.bbox[0] - START[0]) < 1 for r in plain[1:])  # never found without the option
    assert all(score_of(r) < 0.05 for r in plain[1:])

    tracker, runner, results = run(with_search(name, adaptive_region=True), frames)
    # Not found at 255 nor 319 (its outer cells reach 128 crop px), found at 383, then back to normal.
    assert runner.crop_sides == [255, 319, 383, 255, 255, 255]
    assert [score_of(r) < 0.05 for r in results[1:]] == [True, True, False, False, False, False]
    for result in results[3:]:
        assert abs(result.bbox[0] - truth_x) < 3 and abs(result.bbox[1] - START[1]) < 3
        assert score_of(result) > 0.95
    assert tracker.state is not None and tracker.state.search_growth == 0


def test_a_grown_search_keeps_its_side_between_the_thresholds() -> None:
    # At 84 px the 319 crop's outer cell catches the target off-centre (score 0.90: between the
    # thresholds), so the next frame searches 319 again and scores fully.
    _, runner, results = run(with_search("siamban_small", adaptive_region=True), jump_frames(84, 4))
    assert runner.crop_sides == [255, 319, 319, 255]
    assert 0.85 <= score_of(results[2]) < 0.95 and score_of(results[3]) > 0.95


def test_a_grown_siamcar_search_decodes_on_the_grown_map() -> None:
    config = with_search("siamcar_small", adaptive_region=True)
    frame = jump_frames(0, 0)[0]
    state, _ = init_track(config, frame, INIT_BOX)
    state = state.model_copy(update={"search_growth": 3})
    request = prepare_search(config, state, frame)
    assert request.crops.shape[-1] == 447
    shapes = expected_output_shapes(grown_config(config, state), 1)
    assert shapes[0] == (1, 2, 49, 49)
    cls, loc, cen = (np.zeros(shape, np.float32) for shape in shapes)
    cls[0, 0], cls[0, 1] = 5, -5
    # One confident cell 16 cells right of the centre: 128 crop px, past the normal map's 96.
    cls[0, 0, 24, 40], cls[0, 1, 24, 40] = -5, 5
    loc[:] = 32
    new_state, result = finish_search(config, state, request, (cls, loc, cen))
    # SiamCAR's upsampled fine search lands 2 px short, as on the normal map (62 for a 64 px cell).
    assert (new_state.cx - state.cx) * request.scale_z == pytest.approx(126.0)
    assert new_state.cy == pytest.approx(state.cy)
    assert score_of(result) > 0.95 and new_state.search_growth == 0  # confident: back to the normal crop


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[] if get_config(n).backbone.kind in CHEAP_BACKBONES else [pytest.mark.slow])
        for n in list_trackers()
        if fits(get_config(n))
    ],
)
def test_every_fitting_network_searches_a_grown_crop_into_the_grown_map(name: str) -> None:
    config = with_search(name, adaptive_region=True, region_max_steps=1)
    grown_side = search_sides(config)[1]
    torch.manual_seed(0)
    network = build_network(config).eval()
    generator = torch.Generator().manual_seed(1)
    crop_z = torch.randint(0, 256, (1, 3, 127, 127), generator=generator).float()
    crop_x = torch.randint(0, 256, (1, 3, grown_side, grown_side), generator=generator).float()
    with torch.inference_mode():
        embedding = network.template_embedding(crop_z, torch.tensor([[40.0, 40.0]]))
        outputs = network.search_outputs(embedding, crop_x)
    grown = config.model_copy(update={"crop": config.crop.model_copy(update={"instance_size": grown_side})})
    assert [tuple(o.shape) for o in outputs] == expected_output_shapes(grown, 1)


# --- one more search -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MATCHED_TRACKERS)
def test_one_more_search_recentres_on_the_first_estimate_and_keeps_the_better(name: str) -> None:
    # A 40 px move: the cosine window pulls the first search's choice 2.7 px short of the target at a
    # 0.958 score; searched again from there, the target sits at the crop's centre and scores 0.991.
    frames = jump_frames(40, 1)
    truth_x = START[0] + 40
    config = with_search(name, one_more_search=True, second_search_below=0.99)

    _, plain_runner, plain = run(with_search(name), frames)
    tracker, runner, results = run(config, frames)

    assert plain_runner.crop_sides == [255] and runner.crop_sides == [255, 255]
    assert abs(plain[1].bbox[0] - truth_x) > 2
    assert abs(results[1].bbox[0] - truth_x) < 1 and score_of(results[1]) > score_of(plain[1])

    # The second search is exactly a first search from the state re-centred on the first's estimate.
    previous, template_request = init_track(config, frames[0], INIT_BOX)
    matcher = TemplateMatchingRunner(config)
    embedding = matcher.template(template_request.crop, template_request.box_prior)

    def search_from(origin: TrackerState) -> tuple[TrackerState, TrackResult]:
        request = prepare_search(config, origin, frames[1])
        return finish_search(config, origin, request, matcher.search(embedding, request.crops))

    first_state, first_result = search_from(previous)
    assert first_result.bbox == plain[1].bbox
    origin = second_search_origin(config, previous, first_state)
    assert origin is not None and (origin.cx, origin.cy) == (first_state.cx, first_state.cy)
    assert (origin.w, origin.h, origin.frame_index) == (previous.w, previous.h, previous.frame_index)
    second_state, second_result = search_from(origin)
    assert second_result == results[1] and tracker.state == second_state


def test_no_second_search_when_the_first_scores_well_or_the_option_is_off() -> None:
    frames = jump_frames(40, 1)
    _, runner, _ = run(with_search("siamban_small", one_more_search=True), frames)  # 0.958 >= 0.85
    assert runner.crop_sides == [255]
    config = with_search("siamban_small")
    state, _ = init_track(config, frames[0], INIT_BOX)
    low = state.model_copy(update={"last_score": 0.1})
    assert second_search_origin(config, state, low) is None


def test_better_search_keeps_the_first_on_ties() -> None:
    config = with_search("siamban_small")
    frame = jump_frames(0, 0)[0]
    state, _ = init_track(config, frame, INIT_BOX)
    request = prepare_search(config, state, frame)

    def search_pass(score: float) -> SearchPass:
        result = TrackResult(frame_index=1, bbox=INIT_BOX, score=score, status=TrackStatus.UNCERTAIN)
        return SearchPass(state, request, (), state.model_copy(update={"last_score": score}), result)

    first, second = search_pass(0.5), search_pass(0.5)
    assert better_search(first, second) is first
    assert better_search(first, search_pass(0.6)).score == 0.6
    assert better_search(search_pass(0.7), second).score == 0.7


def test_both_options_search_the_grown_side_twice() -> None:
    config = with_search("siamban_small", adaptive_region=True, one_more_search=True)
    _, runner, results = run(config, jump_frames(90, 4))
    # Each low frame is searched twice at its side; the target is found at 383 as without the second.
    assert runner.crop_sides == [255, 255, 319, 319, 383, 255]
    assert abs(results[3].bbox[0] - (START[0] + 90)) < 3


# --- packaging -------------------------------------------------------------------------------------------


def export_args(tmp_path: Path, tracker: str, *search: str) -> argparse.Namespace:
    """`siamstream export` of a training-style checkpoint of `tracker` with `--search` options."""
    config = get_config(tracker)
    checkpoint = tmp_path / f"{tracker}.pth"
    torch.manual_seed(0)
    state = {"tracker": tracker, "config": config.model_dump(mode="json"), "epoch": 1}
    torch.save({**state, "state_dict": build_network(config).state_dict()}, checkpoint)
    options = [argument for name in search for argument in ("--search", name)]
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / tracker), *options]
    return build_parser().parse_args(argv)


def test_export_switches_the_options_on_in_the_package(tmp_path: Path) -> None:
    args = export_args(tmp_path, "siamrpn_alex", "adaptive_region", "one_more_search")
    assert args.run(args) == 0
    config = read_package(tmp_path / "siamrpn_alex").config
    assert config.search == SearchConfig(one_more_search=True, adaptive_region=True)
    assert search_sides(config) == (287, 351, 415, 479)
    args = export_args(tmp_path, "siamfc_alexnet", "adaptive_region")
    with pytest.raises(ValueError, match="not SiamFC"):
        args.run(args)
