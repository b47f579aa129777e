"""The VOT-style reset protocol and EAO against a scripted tracker whose failures are known."""

from __future__ import annotations

import numpy as np
import pytest

from siamstream.evaluation.reset import (
    BURN_IN,
    SKIP_AFTER_FAILURE,
    eao_curve,
    expected_average_overlap,
    run_with_resets,
)

FRAMES = 30
TRUTH = np.tile([10.0, 10.0, 20.0, 20.0], (FRAMES, 1))
FAR_AWAY = (200.0, 200.0, 20.0, 20.0)


def scripted(failing: set[int], calls: list[tuple[int, bool]]):
    """A tracker that is exact except on the `failing` frames, recording every call (frame, started)."""

    def step(index: int, start_box: np.ndarray | None) -> tuple[float, ...]:
        calls.append((index, start_box is not None))
        if start_box is not None:
            return tuple(start_box)
        return FAR_AWAY if index in failing else tuple(TRUTH[index])

    return step


def test_failures_restart_five_frames_later_and_skip_the_frames_between() -> None:
    calls: list[tuple[int, bool]] = []
    run = run_with_resets(TRUTH, scripted({3, 20}, calls))
    assert (SKIP_AFTER_FAILURE, BURN_IN) == (5, 10)  # VOT's values, which the numbers below assume
    assert run.failures == (3, 20)
    assert run.starts == (0, 8, 25)
    assert [index for index, started in calls if started] == [0, 8, 25]
    assert [index for index, _ in calls] == [*range(0, 4), *range(8, 21), *range(25, 30)]
    assert run.segment_failed == (True, True, False)
    assert [segment.tolist() for segment in run.segments] == [[1, 1, 0], [1] * 11 + [0], [1] * 4]
    # Accuracy leaves out the 10 frames after each start: only frames 19 (IoU 1) and 20 (IoU 0) remain.
    assert np.flatnonzero(run.accuracy_frames).tolist() == [19, 20]
    assert run.accuracy == pytest.approx(0.5)
    assert np.isnan(run.overlaps[[0, 4, 7, 8, 21, 25]]).all()


def test_eao_pads_failed_segments_with_zeros_and_keeps_long_enough_unfailed_ones() -> None:
    run = run_with_resets(TRUTH, scripted({3, 20}, []))
    curve = eao_curve([run], 20)
    # Segments A = [1, 1, 0] (failed), B = 11 x 1 then 0 (failed), C = [1, 1, 1, 1] (reached the end).
    expected = {
        1: 1.0,
        3: (2 / 3 + 1 + 1) / 3,
        5: (2 / 5 + 1) / 2,
        12: (2 / 12 + 11 / 12) / 2,
        20: (2 / 20 + 11 / 20) / 2,
    }
    for length, value in expected.items():
        assert curve[length - 1] == pytest.approx(value)
    assert expected_average_overlap([run], 5, 5) == pytest.approx(0.7)
    assert expected_average_overlap([run], 1, 20) == pytest.approx(np.mean(curve))


def test_a_perfect_tracker_never_fails_and_has_eao_one() -> None:
    run = run_with_resets(TRUTH, scripted(set(), []))
    assert run.failures == () and run.starts == (0,)
    assert expected_average_overlap([run], 1, FRAMES - 1) == pytest.approx(1.0)


def test_frames_without_ground_truth_neither_fail_nor_start() -> None:
    truth = TRUTH.copy()
    truth[3] = np.nan  # the scripted failure on frame 3 falls on an unscored frame
    truth[8:10] = np.nan  # so would the restart after the failure on frame 5
    calls: list[tuple[int, bool]] = []
    run = run_with_resets(truth, scripted({3, 5}, calls))
    assert run.failures == (5,)
    assert run.starts == (0, 10)
    assert np.isnan(run.overlaps[3])


def test_eao_range_is_checked() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        expected_average_overlap([], 5, 4)
