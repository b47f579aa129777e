"""Label assignment per head family, on hand-computed cases (boxes xyxy relative to the crop centre)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from siamstream.training.labels import (
    SampleCaps,
    anchor_grid,
    anchor_labels,
    circle_ellipse_labels,
    circle_radius,
    disk_labels,
    ellipse_labels,
    inside_box_labels,
    keep_at_most,
    margin_cell_labels,
)

RNG = np.random.default_rng(0)


def test_keep_at_most_keeps_exactly_the_cap_among_the_candidates() -> None:
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True  # 9 candidates
    kept = keep_at_most(mask, 4, np.random.default_rng(1))
    assert kept.sum() == 4 and not (kept & ~mask).any()
    assert (keep_at_most(mask, 20, np.random.default_rng(1)) == mask).all()


def test_rpn_anchor_matching_the_target_is_the_only_positive_with_exact_deltas() -> None:
    # 3x3 map, stride 8, one square anchor 64x64: anchors at -8, 0, 8. Target 64x64 centred at (0, 0).
    anchors = anchor_grid(8, (1.0,), (8.0,), 3)
    box = np.array([-32.0, -32.0, 32.0, 32.0])
    labels = anchor_labels(box, anchors, 3, True, RNG)
    # IoU with the centre anchor is 1; shifted by 8 px: 56*64 / (2*64*64 - 56*64) = 0.7778 > 0.6;
    # diagonal neighbours: 56*56 / (2*4096 - 3136) = 0.6203 > 0.6 -> all nine are positive.
    assert labels.cls.shape == (1, 3, 3) and (labels.cls == 1).all()
    np.testing.assert_allclose(labels.delta[:, 0, 1, 1], [0, 0, 0, 0], atol=1e-7)
    # cell (0, 2): anchor at (8, -8) -> dx = (0 - 8)/64, dy = (0 + 8)/64, dw = dh = log(64/64)
    np.testing.assert_allclose(labels.delta[:, 0, 0, 2], [-0.125, 0.125, 0, 0], atol=1e-7)
    np.testing.assert_allclose(labels.delta_weight, np.full((1, 3, 3), 1 / 9), rtol=1e-6)


def test_rpn_thresholds_split_positive_ignored_and_negative() -> None:
    # Target 32x32 at the centre against 64x64 anchors: IoU 0.25 at the centre (negative, < 0.3).
    anchors = anchor_grid(8, (1.0,), (8.0,), 3)
    labels = anchor_labels(np.array([-16.0, -16.0, 16.0, 16.0]), anchors, 3, True, RNG)
    assert (labels.cls == 0).all() and labels.delta_weight.sum() == 0
    # Target 48x48: centre IoU 2304/4096 = 0.5625 -> ignored (between 0.3 and 0.6).
    labels = anchor_labels(np.array([-24.0, -24.0, 24.0, 24.0]), anchors, 3, True, RNG)
    assert labels.cls[0, 1, 1] == -1
    np.testing.assert_allclose(labels.delta[2:, 0, 1, 1], [math.log(0.75)] * 2, rtol=1e-6)


def test_rpn_caps_positives_and_negatives_and_negative_pairs_have_no_positive() -> None:
    anchors = anchor_grid(8, (0.33, 0.5, 1.0, 2.0, 3.0), (8.0,), 17)
    box = np.array([-40.0, -40.0, 40.0, 40.0])
    caps = SampleCaps(positives=16, negatives=48, negatives_in_negative_pair=16)
    labels = anchor_labels(box, anchors, 17, True, np.random.default_rng(2), caps=caps)
    assert 0 < (labels.cls == 1).sum() <= 16 and (labels.cls == 0).sum() == 48
    negative = anchor_labels(box, anchors, 17, False, np.random.default_rng(2), caps=caps)
    assert (negative.cls == 1).sum() == 0 and (negative.cls == 0).sum() == 16
    rows, cols = np.nonzero((negative.cls == 0).any(0))
    assert rows.min() >= 5 and rows.max() <= 11 and cols.min() >= 5 and cols.max() <= 11  # 7x7 around centre


PYSOT_ANCHORS = anchor_grid(8, (0.33, 0.5, 1.0, 2.0, 3.0), (8.0,), 25)  # 104x32 ... 32x96, cells at -96..96


def test_margin_labels_are_the_cells_with_a_positive_anchor_before_subsampling() -> None:
    # 64x64 target at the centre: the 64x64 anchors of the 3x3 cells around it have IoU 1, 0.78 and 0.62
    # (see above); two cells out IoU is 0.6 exactly, and no other shape reaches 0.6 (88x40: 0.51).
    box = np.array([-32.0, -32.0, 32.0, 32.0])
    expected = np.zeros((25, 25), np.float32)
    expected[11:14, 11:14] = 1
    np.testing.assert_array_equal(margin_cell_labels(box, PYSOT_ANCHORS, 25, True), expected)
    # The RPN keeping 2 of its 9 positives leaves the other 7 cells on the target all the same.
    rpn = anchor_labels(box, PYSOT_ANCHORS, 25, True, np.random.default_rng(0), caps=SampleCaps(2, 48, 16))
    assert (rpn.cls == 1).sum() == 2
    assert not margin_cell_labels(box, PYSOT_ANCHORS, 25, False).any()


@pytest.mark.parametrize(
    ("box", "cell"),
    [
        # 200x16 at the centre: the best anchor, 104x32, has IoU 104*16 / (3328 + 3200 - 1664) = 0.34.
        (np.array([-100.0, -8.0, 100.0, 8.0]), (12, 12)),
        # 12x150 centred at (22, -10): 32x96 has IoU 12*96 / (3072 + 1800 - 1152) = 0.31; nearest cell
        # x = (22 + 96) / 8 = 14.75 -> column 15, y = (-10 + 96) / 8 = 10.75 -> row 11.
        (np.array([16.0, -85.0, 28.0, 65.0]), (11, 15)),
    ],
)
def test_margin_labels_of_a_target_no_anchor_fits_mark_its_centre_cell(box: np.ndarray, cell: tuple) -> None:
    iou = box_iou_xyxy_of_anchors(box)
    assert iou.max() < 0.6  # the RPN has no positive here: every cell would be background
    expected = np.zeros((25, 25), np.float32)
    expected[cell] = 1
    np.testing.assert_array_equal(margin_cell_labels(box, PYSOT_ANCHORS, 25, True), expected)


def box_iou_xyxy_of_anchors(box: np.ndarray) -> np.ndarray:
    x, y, w, h = PYSOT_ANCHORS.T
    corners = np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1)
    inter_w = np.clip(np.minimum(corners[:, 2], box[2]) - np.maximum(corners[:, 0], box[0]), 0, None)
    inter_h = np.clip(np.minimum(corners[:, 3], box[3]) - np.maximum(corners[:, 1], box[1]), 0, None)
    inter = inter_w * inter_h
    return inter / (w * h + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def test_every_positive_pair_marks_the_targets_centre_cell_whatever_its_aspect_ratio() -> None:
    rng = np.random.default_rng(3)
    reaches_a_positive_anchor = []
    for _ in range(200):
        aspect = np.exp(rng.uniform(-np.log(12), np.log(12)))  # width / height from 1:12 to 12:1
        area = rng.uniform(20, 120) ** 2
        width, height = np.sqrt(area * aspect), np.sqrt(area / aspect)
        cx, cy = (float(value) for value in rng.uniform(-40, 40, size=2))
        box = np.array([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2])
        labels = margin_cell_labels(box, PYSOT_ANCHORS, 25, True)
        reaches_a_positive_anchor.append(box_iou_xyxy_of_anchors(box).max() > 0.6)
        # An anchor's IoU only falls as it moves away from the box centre: the nearest cell is positive.
        assert labels[round((cy + 96) / 8), round((cx + 96) / 8)] == 1
    # both kinds of target are there: 36 reach a positive anchor, 164 (small or elongated) do not
    assert reaches_a_positive_anchor.count(True) == 36


def test_ban_ellipses_give_positive_ignored_and_negative_cells() -> None:
    # Box 64 wide, 32 high at the centre; 5x5 map, stride 8 -> points at -16, -8, 0, 8, 16.
    box = np.array([-32.0, -16.0, 32.0, 16.0])
    big = SampleCaps(positives=100, negatives=100)
    labels = ellipse_labels(box, 8, 5, True, RNG, big)
    # small ellipse semi-axes 16 x 8: (x/16)^2 + (y/8)^2 < 1 -> x in {-8, 0, 8} on y = 0 only.
    expected_positive = np.zeros((5, 5), bool)
    expected_positive[2, 1:4] = True
    assert ((labels.cls == 1) == expected_positive).all()
    # large ellipse semi-axes 32 x 16: (16, 16) gives 0.25 + 1 > 1, negative; (8, 8) 0.3125, ignored
    assert labels.cls[0, 0] == 0 and labels.cls[1, 1] == -1 and labels.cls[2, 0] == -1  # (-16, 0): 0.25
    np.testing.assert_allclose(labels.ltrb[:, 2, 2], [32, 16, 32, 16])
    np.testing.assert_allclose(labels.ltrb[:, 0, 0], [16, 0, 48, 32])
    # A negative pair draws its negatives inside the small ellipse E2, where the positives would be
    # (siamban point_target.py); (8, 8) is inside E1 but not E2 and stays ignored.
    negative = ellipse_labels(box, 8, 5, False, RNG, big)
    np.testing.assert_array_equal(negative.cls == 0, expected_positive)
    assert (negative.cls[~expected_positive] == -1).all()


def test_siamcan_circle_sits_inside_the_ellipse() -> None:
    assert circle_radius(64, 32) == pytest.approx(32 * 16 / math.hypot(32, 16))  # 14.311
    box = np.array([-32.0, -16.0, 32.0, 16.0])
    labels = circle_ellipse_labels(box, 8, 5, True, RNG, SampleCaps(positives=100, negatives=100))
    # radius 14.31: (0,0), (+-8, 0), (0, +-8) and (+-8, +-8) (dist 11.31) are inside
    expected_positive = np.zeros((5, 5), bool)
    expected_positive[1:4, 1:4] = True
    assert ((labels.cls == 1) == expected_positive).all()
    assert labels.cls[2, 0] == -1 and labels.cls[0, 0] == 0
    # A negative pair: negatives inside the circle, where the positives would be; (-16, 0), inside E1, is not.
    negative = circle_ellipse_labels(box, 8, 5, False, RNG, SampleCaps(positives=100, negatives=100))
    np.testing.assert_array_equal(negative.cls == 0, expected_positive)
    assert negative.cls[2, 0] == -1


def test_car_inside_box_labels_and_centerness() -> None:
    box = np.array([-20.0, -12.0, 20.0, 12.0])
    anywhere = inside_box_labels(box, 8, 5, True, central_fraction=0.0)
    # points with |x| < 20 and |y| < 12: x in {-16..16}, y in {-8, 0, 8}
    assert (anywhere.cls[1:4, :] == 1).all() and (anywhere.cls[[0, 4], :] == 0).all()
    central = inside_box_labels(box, 8, 5, True, central_fraction=0.6)
    # each side distance > 0.6 x half side (12 and 7.2): |x| < 8 and |y| < 4.8 -> only (0, 0)
    assert central.cls.sum() == 1 and central.cls[2, 2] == 1
    # centerness at (8, 0): l=28, r=12, t=b=12 -> sqrt(12/28 * 1)
    assert central.centerness[2, 3] == pytest.approx(math.sqrt(12 / 28), rel=1e-6)
    assert central.centerness[0, 0] == 0.0
    assert (inside_box_labels(box, 8, 5, False).cls == 0).all()


def test_siamfc_disk_labels_and_balanced_weights() -> None:
    box = np.array([-20.0, -20.0, 20.0, 20.0])
    labels = disk_labels(box, 8, 5, True, radius_px=8.0)
    # radius 8 px = 1 cell: the centre and its 4 neighbours
    expected = np.zeros((5, 5), np.float32)
    expected[2, 1:4] = 1
    expected[1:4, 2] = 1
    np.testing.assert_array_equal(labels.target, expected)
    assert labels.weight[2, 2] == pytest.approx(0.5 / 5) and labels.weight[0, 0] == pytest.approx(0.5 / 20)
    assert labels.weight.sum() == pytest.approx(1.0)
    negative = disk_labels(box, 8, 5, False, radius_px=8.0)
    assert negative.target.sum() == 0 and negative.weight.sum() == pytest.approx(1.0)
