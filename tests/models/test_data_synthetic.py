"""Synthetic sequences: determinism, exact ground truth, and that each challenge really happens."""

from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from siamstream.data.synthetic import (
    Challenge,
    SequenceSpec,
    generate_sequence,
    leave_and_return,
    stratified_suite,
    synthetic_suite,
)

SMALL: dict[str, Any] = {"width": 320, "height": 240, "length": 24}


def sample_box(frame: np.ndarray, box: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """The frame resampled inside an xywh box onto the texture grid (inverse of the renderer's warp)."""
    x, y, w, h = box
    scale_x, scale_y = w / texture.shape[1], h / texture.shape[0]
    warp = np.array([[scale_x, 0, x + 0.5 * scale_x - 0.5], [0, scale_y, y + 0.5 * scale_y - 0.5]])
    size = (texture.shape[1], texture.shape[0])
    return cv2.warpAffine(frame, warp, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def test_same_spec_gives_identical_frames_and_ground_truth():
    spec = SequenceSpec(seed=7, challenges=frozenset(Challenge), **SMALL)
    first, second = generate_sequence(spec), generate_sequence(spec)
    assert np.array_equal(first.ground_truth, second.ground_truth)
    assert all(np.array_equal(a, b) for a, b in zip(first.frames(), second.frames(), strict=True))
    # Lazy rendering does not depend on the order of access.
    assert np.array_equal(first.frame(17), list(second.frames())[17])


def test_another_seed_gives_another_sequence():
    first = generate_sequence(SequenceSpec(seed=1, **SMALL))
    second = generate_sequence(SequenceSpec(seed=2, **SMALL))
    assert not np.array_equal(first.ground_truth, second.ground_truth)
    assert not np.array_equal(first.frame(0), second.frame(0))


def test_challenges_change_the_plan_but_not_the_scene():
    plain = generate_sequence(SequenceSpec(seed=5, **SMALL))
    harder = generate_sequence(SequenceSpec(seed=5, challenges={Challenge.OCCLUSION}, **SMALL))
    assert np.array_equal(plain.background, harder.background)
    assert np.array_equal(plain.target_texture, harder.target_texture)
    assert np.array_equal(plain.ground_truth, harder.ground_truth)
    assert np.isnan(plain.occluder_boxes).all() and not np.isnan(harder.occluder_boxes).all()


def test_frames_are_bgr_uint8_of_the_spec_size():
    sequence = generate_sequence(SequenceSpec(**SMALL))
    frames = list(sequence.frames())
    assert len(frames) == len(sequence) == 24
    assert {(f.shape, f.dtype) for f in frames} == {((240, 320, 3), np.dtype(np.uint8))}
    assert sequence.ground_truth.shape == (24, 4)
    assert np.array_equal(sequence.init_box, sequence.ground_truth[0])


def test_spec_rejects_unknown_keys_and_unsafe_names():
    with pytest.raises(ValidationError):
        SequenceSpec(frames=10)  # type: ignore[call-arg]  # the unknown key under test
    with pytest.raises(ValidationError):
        SequenceSpec(name="../escape")
    with pytest.raises(ValidationError):
        SequenceSpec(challenges={"teleport"})


def test_target_texture_is_exactly_at_the_ground_truth():
    sequence = generate_sequence(SequenceSpec(seed=3, **SMALL))
    texture = sequence.target_texture
    for index in (0, 11, 23):
        frame, box = sequence.frame(index), sequence.ground_truth[index]
        assert correlation(sample_box(frame, box, texture), texture) > 0.9
        # One box width aside (inside the frame) there is background, not the target.
        shifted = box + np.array([box[2] if box[0] + 2 * box[2] < 320 else -box[2], 0, 0, 0])
        assert correlation(sample_box(frame, shifted, texture), texture) < 0.5
        # A quarter-size misalignment already loses much of the match: the box is tight.
        nudged = box + np.array([box[2] / 4, box[3] / 4, 0, 0])
        assert correlation(sample_box(frame, nudged, texture), texture) < 0.8


def test_target_pixels_differ_from_the_background_inside_the_box_only():
    sequence = generate_sequence(SequenceSpec(seed=4, **SMALL))
    frame = sequence.frame(5).astype(int)
    x, y, w, h = np.round(sequence.ground_truth[5]).astype(int)
    changed = np.abs(frame - sequence.background.astype(int)).sum(axis=2) > 0
    assert changed[y + 1 : y + h - 1, x + 1 : x + w - 1].mean() > 0.9
    changed[max(y - 1, 0) : y + h + 1, max(x - 1, 0) : x + w + 1] = False
    assert not changed.any()


def test_out_of_view_target_partly_leaves_the_frame():
    sequence = generate_sequence(SequenceSpec(seed=5, challenges={Challenge.OUT_OF_VIEW}, **SMALL))
    assert 0.3 < sequence.in_view.min() < 0.5
    assert sequence.in_view[0] == 1.0
    truth = sequence.ground_truth
    assert (truth[:, :2] >= 0).all() and (truth[:, 0] + truth[:, 2] <= 320).all()
    assert (truth[:, 1] + truth[:, 3] <= 240).all()
    index = int(np.argmin(sequence.in_view))
    full = sequence.target_boxes[index]
    assert full[0] < 0 or full[1] < 0 or full[0] + full[2] > 320 or full[1] + full[3] > 240


def test_occluder_really_covers_the_target():
    sequence = generate_sequence(SequenceSpec(seed=6, challenges={Challenge.OCCLUSION}, **SMALL))
    assert sequence.occlusion[0] == 0.0
    assert sequence.occlusion.max() > 0.6
    texture = sequence.target_texture
    index = int(np.argmax(sequence.occlusion))
    visible = correlation(sample_box(sequence.frame(0), sequence.ground_truth[0], texture), texture)
    hidden = correlation(sample_box(sequence.frame(index), sequence.ground_truth[index], texture), texture)
    assert visible > 0.9 and hidden < 0.6


def test_fast_motion_jumps_and_plain_motion_is_smooth():
    plain = generate_sequence(SequenceSpec(seed=8, **SMALL))
    fast = generate_sequence(SequenceSpec(seed=8, challenges={Challenge.FAST_MOTION}, **SMALL))
    side = 0.15 * 240

    def largest_step(sequence):
        centres = sequence.target_boxes[:, :2] + sequence.target_boxes[:, 2:] / 2
        return np.linalg.norm(np.diff(centres, axis=0), axis=1).max()

    assert largest_step(plain) < 0.3 * side
    assert largest_step(fast) > side


def test_scale_and_aspect_change():
    spec = SequenceSpec(seed=9, challenges={Challenge.SCALE_CHANGE, Challenge.ASPECT_CHANGE}, **SMALL)
    boxes = generate_sequence(spec).target_boxes
    side, aspect = np.sqrt(boxes[:, 2] * boxes[:, 3]), boxes[:, 2] / boxes[:, 3]
    assert side.max() / side.min() >= 1.6 * 0.99  # boxes are rounded to 0.01 px
    assert aspect.max() / aspect.min() >= 1.5 * 0.99


def test_distractors_look_like_the_target_and_are_drawn():
    spec = SequenceSpec(seed=10, challenges={Challenge.DISTRACTORS}, distractor_count=3, **SMALL)
    sequence = generate_sequence(spec)
    assert sequence.distractor_boxes.shape == (3, 24, 4)
    assert correlation(sequence.distractor_texture, sequence.target_texture) > 0.8
    changed = (sequence.frame(0) != sequence.background).any(axis=2)
    x, y, w, h = sequence.ground_truth[0]
    changed[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = False
    assert changed.sum() > 0.5 * w * h  # look-alike pixels outside the target


def test_appearance_change_blends_the_target_into_another_texture_and_colour():
    spec = SequenceSpec(seed=12, challenges={Challenge.APPEARANCE_CHANGE}, **SMALL)
    sequence = generate_sequence(spec)
    plain = generate_sequence(SequenceSpec(seed=12, **SMALL))
    assert np.array_equal(sequence.ground_truth, plain.ground_truth)
    assert np.array_equal(sequence.background, plain.background)
    assert not plain.appearance_blend.any()
    blend = sequence.appearance_blend
    assert blend[0] == 0.0 and blend[-1] == 1.0 and (np.diff(blend) >= 0).all()
    assert 0.2 < blend[11] < 0.8  # mid-sequence: a mixture of both looks
    old, new = sequence.target_texture, sequence.changed_texture
    first = sample_box(sequence.frame(0), sequence.ground_truth[0], old)
    last = sample_box(sequence.frame(23), sequence.ground_truth[23], old)
    middle = sample_box(sequence.frame(11), sequence.ground_truth[11], old)
    assert correlation(first, old) > 0.9 and np.array_equal(sequence.frame(0), plain.frame(0))
    assert correlation(last, new) > 0.9 and correlation(last, old) < 0.3
    assert correlation(middle, old) > 0.3 and correlation(middle, new) > 0.3
    # The colour changes too: every channel's mean moves by at least half of the 60-level cast.
    colour_shift = np.abs(last.mean(axis=(0, 1)) - first.mean(axis=(0, 1)))
    assert (colour_shift > 25).all(), colour_shift


def test_suite_extra_challenges_add_to_every_sequence_and_keep_the_scenes():
    base = synthetic_suite(3, seed=1, **SMALL)
    changed = synthetic_suite(3, seed=1, extra_challenges=frozenset({Challenge.APPEARANCE_CHANGE}), **SMALL)
    assert [s.name for s in changed] == [
        "syn000-appearance_change",
        "syn001-appearance_change-fast_motion",
        "syn002-appearance_change-aspect_change-scale_change",
    ]
    for a, b in zip(base, changed, strict=True):
        assert np.array_equal(a.ground_truth, b.ground_truth) and np.array_equal(a.frame(0), b.frame(0))
        assert b.appearance_blend[-1] == 1.0 and not np.array_equal(a.frame(23), b.frame(23))


def test_suite_covers_every_challenge_reproducibly():
    suite = synthetic_suite(10, seed=1, **SMALL)
    assert len({sequence.name for sequence in suite}) == 10
    # The appearance change is only added on request (the mixes define the training data).
    every = set(Challenge) - {Challenge.APPEARANCE_CHANGE}
    assert set().union(*(sequence.spec.challenges for sequence in suite)) == every
    again = synthetic_suite(10, seed=1, **SMALL)
    assert all(np.array_equal(a.ground_truth, b.ground_truth) for a, b in zip(suite, again, strict=True))
    other = synthetic_suite(2, seed=2, **SMALL)
    assert not np.array_equal(suite[0].ground_truth, other[0].ground_truth)


def test_stratified_suite_has_each_challenge_in_its_own_stratum() -> None:
    suite = stratified_suite(2, seed=5, length=12, width=160, height=120)
    assert [sequence.name for sequence in suite[:4]] == [
        "distractors-00",
        "distractors-01",
        "appearance_change-00",
        "appearance_change-01",
    ]
    assert len(suite) == 12
    assert suite[6].spec.challenges == {Challenge.SCALE_CHANGE, Challenge.ASPECT_CHANGE}
    assert suite[-1].spec.challenges == {Challenge.OUT_OF_VIEW}
    assert all(len(sequence) == 12 and sequence.frame(0).shape == (120, 160, 3) for sequence in suite)
    # Held out: no sequence seed is shared with the training suite (`synthetic:N` is synthetic_suite seed 0).
    training_seeds = {sequence.spec.seed for sequence in synthetic_suite(300, seed=0, length=2)}
    assert training_seeds.isdisjoint(
        sequence.spec.seed for sequence in stratified_suite(10, seed=5, length=2)
    )


def test_leave_and_return_takes_the_target_out_of_view_and_back_far_away():
    spec = SequenceSpec(seed=4, **SMALL)  # 24 frames: away from frame 7 (0.3 x 23) to 11, back at 12
    plain, sequence = generate_sequence(spec), leave_and_return(spec)
    away = np.arange(len(sequence))
    assert sequence.visible is not None
    assert sequence.visible.tolist() == ((away < 7) | (away >= 12)).tolist()
    assert np.array_equal(sequence.ground_truth[:7], plain.ground_truth[:7])
    for index in range(7, 12):
        assert sequence.ground_truth[index, 2] == 0.0
        assert np.array_equal(sequence.frame(index), sequence.background)  # nothing of the target drawn
    last_seen = sequence.ground_truth[6, :2] + sequence.ground_truth[6, 2:] / 2
    back = sequence.ground_truth[12, :2] + sequence.ground_truth[12, 2:] / 2
    assert np.hypot(*(back - last_seen)) >= 0.5 * 240
    assert sequence.in_view[12:].min() == 1.0
    # After the return the target moves as it would have: the plain path's steps.
    np.testing.assert_allclose(
        np.diff(sequence.target_boxes[12:, :2], axis=0),
        np.diff(plain.target_boxes[12:, :2], axis=0),
        atol=0.011,
    )
