"""Several targets in one stream: each gets the boxes it gets tracked alone, with the stages batched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siamstream.benchmark.tracker import random_network
from siamstream.config import SearchConfig, StatusConfig, TemplateUpdateConfig, TrackerConfig, merge_fields
from siamstream.data import SequenceSpec, generate_sequence
from siamstream.package import export_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.multi_target import MultiTargetTracker, same_shape_groups
from siamstream.tracking.offline import OfflineTracker
from tests.models.template_matching import TemplateMatchingRunner, _smooth_noise, textured_frames
from tests.recording_runner import RecordingRunner

BOXES = ((40.0, 50.0, 36.0, 30.0), (150.0, 90.0, 28.0, 40.0), (200.0, 30.0, 50.0, 44.0))


def frames(count: int) -> list[np.ndarray]:
    sequence = generate_sequence(SequenceSpec(name="many", length=count, seed=5, width=320, height=240))
    return list(sequence.frames())


def runner_for(config: TrackerConfig, root: Path) -> PackageRunner:
    return PackageRunner(export_package(random_network(config), config, root))


@pytest.mark.parametrize(
    ("config", "crops_per_target", "searches_per_frame"),
    [
        (get_config("siamrpn_alex"), 1, 1),
        (get_config("siamfc_alexnet"), 3, 1),  # the scale pyramid: three crops per target
        (
            # Every frame is searched again (no score reaches 1): the second searches batch too.
            get_config("siamrpn_alex").model_copy(
                update={"search": SearchConfig(one_more_search=True, second_search_below=1.0)}
            ),
            1,
            2,
        ),
        (
            # Every frame updates every template (gate 0): the update stage batches too.
            get_config("siammargin_small").model_copy(
                update={"template_update": TemplateUpdateConfig(enabled=True, rate=0.3, gate=0.0)}
            ),
            1,
            1,
        ),
    ],
    ids=["siamrpn_alex", "siamfc_alexnet", "one_more_search", "template_update"],
)
def test_targets_are_tracked_as_alone_with_one_call_per_stage_and_frame(
    config: TrackerConfig, crops_per_target: int, searches_per_frame: int, tmp_path: Path
) -> None:
    runner = runner_for(config, tmp_path / config.name)
    sequence = frames(5)
    recording = RecordingRunner(runner)
    tracker = MultiTargetTracker(config, recording)
    results = [tracker.init(sequence[0], BOXES)] + [tracker.track(frame) for frame in sequence[1:]]

    assert recording.calls["template"] == [len(BOXES)]
    searches = [rows for rows, _ in recording.calls["search"]]
    assert searches == [len(BOXES) * crops_per_target] * 4 * searches_per_frame
    assert recording.calls["update"] == ([len(BOXES)] * 4 if config.template_update.enabled else [])
    for target, box in enumerate(BOXES):
        expected = OfflineTracker(config, runner).track_sequence(sequence, box)
        mine = [frame_results[target] for frame_results in results]
        np.testing.assert_allclose([r.bbox for r in mine], [e.bbox for e in expected], atol=1e-3)
        assert [r.status for r in mine] == [e.status for e in expected]
        assert [r.frame_index for r in mine] == [0, 1, 2, 3, 4]
    if config.template_update.enabled:
        assert [state.template_updates for state in tracker.states] == [4, 4, 4]


def test_crops_of_different_sides_go_to_separate_calls() -> None:
    shapes = [(3, 255, 255), (3, 319, 319), (3, 255, 255), (1, 255, 255)]
    assert same_shape_groups(shapes) == [[0, 2], [1], [3]]


def test_init_needs_a_box_and_track_needs_init(tmp_path: Path) -> None:
    config = get_config("siamrpn_alex")
    tracker = MultiTargetTracker(config, runner_for(config, tmp_path / "alex"))
    frame = frames(2)[0]
    with pytest.raises(RuntimeError, match="before init"):
        tracker.track(frame)
    with pytest.raises(ValueError, match="at least one box"):
        tracker.init(frame, [])


class RowByRowMatching:
    """`TemplateMatchingRunner` one row at a time, for batches of several targets and crops; `calls`
    records (crops, side) of every search call."""

    def __init__(self, config: TrackerConfig) -> None:
        self.matching = TemplateMatchingRunner(config)
        self.calls: list[tuple[int, int]] = []

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        rows = [self.matching.template(crop_z[k : k + 1], box_prior[k : k + 1]) for k in range(len(crop_z))]
        return np.concatenate(rows)

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        self.calls.append((crop_x.shape[0], crop_x.shape[-1]))
        rows = [
            self.matching.search(template_embedding[k : k + 1], crop_x[k : k + 1]) for k in range(len(crop_x))
        ]
        return tuple(np.concatenate(outputs) for outputs in zip(*rows, strict=True))


def test_a_lost_search_and_a_tracked_target_in_one_frame_are_tracked_as_alone() -> None:
    # Target A (40 px) leaves after frame 1 and comes back 360 px away at frame 6; target B, another
    # texture, moves on slowly at the top right. Long-term mode with 511 lost crops: while A is LOST its
    # searches are 511 crops (a 2 x 2 grid, one tile a frame) in the same frames as B's 255 crop.
    changes = {
        "long_term": {"enabled": True, "lost_instance_size": 511},
        "status": StatusConfig(lost_after=2).model_dump(),
        "template_update": {"enabled": False},
    }
    config = TrackerConfig.model_validate(merge_fields(get_config("siamban_small").model_dump(), changes))
    a_corners = [(60, 60), (62, 60), None, None, None, None, (380, 240), (381, 240), (382, 240)]
    sequence = textured_frames(a_corners, 40)
    b_texture = _smooth_noise(np.random.default_rng(11), 40, 40)
    for index, frame in enumerate(sequence):
        frame[60 : 60 + 40, 300 + index : 340 + index] = b_texture
    boxes = ((60.0, 60.0, 40.0, 40.0), (300.0, 60.0, 40.0, 40.0))

    runner = RowByRowMatching(config)
    tracker = MultiTargetTracker(config, runner)
    results = [tracker.init(sequence[0], boxes)]
    calls_by_frame = []
    for frame in sequence[1:]:
        runner.calls.clear()
        results.append(tracker.track(frame))
        calls_by_frame.append(sorted(runner.calls))

    statuses = [[r.status.value for r in frame_results] for frame_results in results]
    a_statuses, b_statuses = zip(*statuses, strict=True)
    assert a_statuses[:5] == ("tracking", "tracking", "uncertain", "lost", "lost")
    assert set(b_statuses) == {"tracking"}
    # Frame 4 on, until A is found again: A's lost search and B's search, one call each.
    found_at = a_statuses.index("tracking", 4)
    assert 6 <= found_at <= 9
    # calls_by_frame[k] is frame k + 1's: frame 3 (A not yet LOST) batches both 255 crops.
    assert calls_by_frame[2] == [(2, 255)]
    for index in range(4, found_at + 1):
        assert calls_by_frame[index - 1] == [(1, 255), (1, 511)]
    for target, box in enumerate(boxes):
        alone = OfflineTracker(config, RowByRowMatching(config)).track_sequence(sequence, box)
        mine = [frame_results[target] for frame_results in results]
        assert [r.bbox for r in mine] == [r.bbox for r in alone]
        assert [(r.status, r.score) for r in mine] == [(r.status, r.score) for r in alone]
