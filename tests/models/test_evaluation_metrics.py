"""OPE metrics on hand-made boxes whose IoU, centre errors and curves are computed by hand."""

import numpy as np
import pytest

from siamstream.evaluation.metrics import (
    NORM_PRECISION_THRESHOLDS,
    PRECISION_THRESHOLDS,
    SUCCESS_THRESHOLDS,
    centre_error,
    evaluate_sequence,
    overlap,
    valid_frames,
)


def boxes(*rows):
    return np.array(rows, dtype=np.float64)


def test_thresholds_match_the_pysot_toolkit():
    assert np.array_equal(SUCCESS_THRESHOLDS, np.arange(0, 1.05, 0.05))
    assert len(PRECISION_THRESHOLDS) == 51 and PRECISION_THRESHOLDS[20] == 20
    assert len(NORM_PRECISION_THRESHOLDS) == 51 and NORM_PRECISION_THRESHOLDS[-1] == 0.5


def test_overlap_of_hand_made_boxes():
    ground_truth = boxes([0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10])
    predicted = boxes(
        [0, 0, 10, 10],  # identical
        [20, 20, 10, 10],  # disjoint
        [5, 0, 10, 10],  # half of each: 50 / (100 + 100 - 50)
        [0, 0, 10, 5],  # inside, half the area: 50 / 100
        [10, 0, 10, 10],  # touching edges: no "+1" pixel, so no overlap
    )
    assert overlap(predicted, ground_truth) == pytest.approx([1.0, 0.0, 1 / 3, 0.5, 0.0])


def test_overlap_with_an_eps_in_the_union():
    # GOT-10k's toolkit adds eps to the union: 50 / (150 + 50) with eps 50; without, exactly 1/3 and 1.
    predicted, ground_truth = boxes([5, 0, 10, 10], [0, 0, 10, 10]), boxes([0, 0, 10, 10], [0, 0, 10, 10])
    assert overlap(predicted, ground_truth, eps=50.0).tolist() == [0.25, 100 / 150]
    assert overlap(predicted, ground_truth).tolist() == [50 / 150, 1.0]


def test_overlap_of_an_invalid_prediction_is_zero():
    predicted = boxes([np.nan, 0, 10, 10], [0, 0, 0, 0])
    ground_truth = boxes([0, 0, 10, 10], [0, 0, 0, 0])
    assert overlap(predicted, ground_truth).tolist() == [0, 0]


def test_centre_error_equals_pysot_centres_with_the_minus_one():
    rng = np.random.default_rng(3)
    predicted = rng.uniform(1, 100, (20, 4))
    ground_truth = rng.uniform(1, 100, (20, 4))

    def pysot_centre(b):
        return b[:, :2] + (b[:, 2:] - 1) / 2

    expected = np.linalg.norm(pysot_centre(predicted) - pysot_centre(ground_truth), axis=1)
    assert centre_error(predicted, ground_truth) == pytest.approx(expected)


def test_all_perfect_frames_give_the_toolkits_top_auc():
    truth = boxes([10, 20, 30, 40], [12, 22, 30, 40], [14, 24, 31, 41])
    metrics = evaluate_sequence(truth, truth.copy())
    # Success counts IoU > t (strict, as pysot, OTB, GOT-10k), so IoU 1 fails at t = 1: 20 of 21 points.
    assert metrics.success_curve.tolist() == [1.0] * 20 + [0.0]
    assert metrics.success_auc == pytest.approx(20 / 21)
    assert metrics.precision == 1.0
    assert metrics.norm_precision == 1.0
    assert metrics.frames == 3


def test_all_half_overlaps_give_ten_of_twenty_one():
    truth = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
    predicted = np.tile([0.0, 0.0, 10.0, 5.0], (4, 1))  # IoU exactly 0.5
    metrics = evaluate_sequence(truth, predicted)
    # IoU > t holds for t = 0, 0.05, ..., 0.45 (10 thresholds), not at 0.5 (strict) nor above.
    assert metrics.success_curve.tolist() == [1.0] * 10 + [0.0] * 11
    assert metrics.success_auc == pytest.approx(10 / 21)


def test_precision_of_known_centre_errors():
    truth = np.tile([100.0, 100.0, 20.0, 20.0], (4, 1))
    shifts = np.array([[3, 4], [12, 16], [30, 40], [60, 80]], dtype=float)  # errors 5, 20, 50, 100 px
    predicted = truth.copy()
    predicted[:, :2] += shifts
    metrics = evaluate_sequence(truth, predicted)
    assert metrics.precision == 0.5  # 5 and 20 px: <= 20 is inclusive
    assert metrics.precision_curve[4] == 0.0
    assert metrics.precision_curve[5] == 0.25
    assert metrics.precision_curve[50] == 0.75


def test_normalised_precision_divides_by_ground_truth_size():
    truth = np.tile([0.0, 0.0, 100.0, 50.0], (4, 1))
    predicted = truth.copy()
    predicted[:, :2] += [[10, 0], [0, 10], [30, 0], [6, 4]]  # normalised: 0.1, 0.2, 0.3, 0.1
    metrics = evaluate_sequence(truth, predicted)
    assert metrics.norm_precision == 0.75
    assert metrics.norm_precision_curve[9] == 0.0
    assert metrics.norm_precision_curve[10] == 0.5
    assert metrics.norm_precision_curve[30] == 1.0
    assert metrics.precision == 0.75  # errors 10, 10, 30 and 7.2 px
    assert metrics.precision_curve[29] == 0.75
    assert metrics.precision_curve[30] == 1.0


def test_absent_and_invalid_frames_are_left_out():
    truth = boxes([0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [0, 0, 0, 10])
    predicted = boxes([0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 10, 10], [50, 50, 10, 10], [50, 50, 10, 10])
    visible = np.array([True, True, False, True, True])
    assert valid_frames(truth, visible).tolist() == [True, True, False, False, False]
    metrics = evaluate_sequence(truth, predicted, visible)
    assert metrics.frames == 2
    assert metrics.success_auc == pytest.approx(20 / 21)
    assert metrics.precision == 1.0


def test_a_nan_prediction_is_a_failure():
    truth = np.tile([0.0, 0.0, 10.0, 10.0], (2, 1))
    predicted = boxes([0, 0, 10, 10], [np.nan] * 4)
    metrics = evaluate_sequence(truth, predicted)
    assert metrics.success_curve[0] == 0.5
    assert metrics.success_auc == pytest.approx(0.5 * 20 / 21)
    assert metrics.precision == 0.5


def test_errors_name_the_problem():
    truth = np.tile([0.0, 0.0, 10.0, 10.0], (2, 1))
    with pytest.raises(ValueError, match="1 predicted boxes for 2"):
        evaluate_sequence(truth, truth[:1])
    with pytest.raises(ValueError, match="no frame"):
        evaluate_sequence(truth, truth, visible=np.array([False, False]))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        evaluate_sequence(truth, truth[:, :3])
