"""SiamRPN++ / SiamBAN decoding, penalty and box selection on crafted head outputs."""

import math

import numpy as np
import pytest

from siamstream.config import AnchorConfig, Family, RPNHyper
from siamstream.tracking.anchors import ban_points, rpn_anchors
from siamstream.tracking.penalty import change, padded_size, size_change_penalty
from siamstream.tracking.rpn import decode_anchor_boxes, decode_point_boxes, foreground_scores, select_box
from siamstream.tracking.window import cosine_window, tiled_window

S = 25
ANCHORS = rpn_anchors(8, (0.33, 0.5, 1.0, 2.0, 3.0), (8.0,), S)
HYPER = RPNHyper(
    family=Family.SIAMRPN, penalty_k=0.05, window_influence=0.42, lr=0.38, anchors=AnchorConfig()
)


def flat(a: int, i: int, j: int) -> int:
    return a * S * S + i * S + j


def test_foreground_scores_softmax_of_bg_fg_halves():
    cls = np.zeros((1, 10, S, S), np.float32)
    cls[0, 5 + 2, 3, 4] = math.log(3.0)  # fg of anchor 2 at (3, 4): p = 3 / (1 + 3)
    cls[0, 1, 0, 0] = math.log(4.0)  # bg of anchor 1 at (0, 0): p = 1 / (4 + 1)
    scores = foreground_scores(cls)
    assert scores.dtype == np.float32 and scores.shape == (5 * S * S,)
    assert scores[flat(2, 3, 4)] == pytest.approx(0.75)
    assert scores[flat(1, 0, 0)] == pytest.approx(0.2)
    assert scores[flat(0, 0, 0)] == pytest.approx(0.5)


def test_decode_anchor_boxes():
    loc = np.zeros((1, 20, S, S), np.float32)
    a, i, j = 2, 12, 14  # 64x64 anchor at (16, 0)
    loc[0, 0 * 5 + a, i, j] = 0.25
    loc[0, 1 * 5 + a, i, j] = -0.5
    loc[0, 2 * 5 + a, i, j] = math.log(2.0)
    boxes = decode_anchor_boxes(loc, ANCHORS)
    assert boxes.dtype == np.float32 and boxes.shape == (4, 5 * S * S)
    np.testing.assert_allclose(boxes[:, flat(a, i, j)], [16 + 16, 0 - 32, 128, 64], rtol=1e-6)
    np.testing.assert_array_equal(boxes[:, flat(0, 0, 0)], [-96, -96, 104, 32])


def test_decode_point_boxes():
    loc = np.ones((1, 4, S, S), np.float32)
    loc[0, :, 12, 14] = [10, 20, 30, 40]  # point (16, 0): x1 = 6, y1 = -20, x2 = 46, y2 = 40
    boxes = decode_point_boxes(loc, ban_points(8, S))
    np.testing.assert_array_equal(boxes[:, 12 * S + 14], [26, 10, 40, 60])
    np.testing.assert_array_equal(boxes[:, 0], [-96, -96, 2, 2])


def test_penalty_by_hand():
    assert change(np.float64(0.5)) == 2.0 and change(np.float64(4.0)) == 4.0
    assert padded_size(np.float64(64), np.float64(64)) == 128.0
    pred_w = np.array([128, 64, 64], np.float32)
    pred_h = np.array([128, 32, 64], np.float32)
    penalty = size_change_penalty(pred_w, pred_h, 64.0, 64.0, 1.0, 0.1)
    assert penalty.dtype == np.float64
    s_c = 128 / math.sqrt(112 * 80)  # padded size of 64x32 is sqrt(112 * 80)
    np.testing.assert_allclose(
        penalty, [math.exp(-(2 - 1) * 0.1), math.exp(-(2 * s_c - 1) * 0.1), 1.0], rtol=1e-6
    )


def crafted_rpn(best: tuple[int, int, int], fg: float = 8.0):
    cls = np.zeros((1, 10, S, S), np.float32)
    cls[0, 5:] = -8.0
    a, i, j = best
    cls[0, 5 + a, i, j] = fg
    loc = np.zeros((1, 20, S, S), np.float32)
    loc[0, 0 * 5 + a, i, j] = 0.25
    loc[0, 1 * 5 + a, i, j] = -0.5
    return cls, loc


def test_select_box_finds_the_crafted_anchor_and_smooths_the_size():
    cls, loc = crafted_rpn((2, 12, 14))
    scores = foreground_scores(cls)
    boxes = decode_anchor_boxes(loc, ANCHORS)
    # target 100x100 image px at scale_z 0.5 is 50x50 crop px; the chosen box is 64x64 crop px
    estimate = select_box(
        HYPER, scores, boxes, tiled_window(S, 5), (300.0, 200.0, 100.0, 100.0), 0.5, (640, 480)
    )
    penalty = math.exp(-(128 / 100 - 1) * 0.05)
    lr = penalty * float(scores[flat(2, 12, 14)]) * 0.38
    assert estimate.score == pytest.approx(1 / (1 + math.exp(-8)))
    assert estimate.cx == pytest.approx(300 + 32 / 0.5)
    assert estimate.cy == pytest.approx(200 - 32 / 0.5)
    assert estimate.w == pytest.approx(100 * (1 - lr) + 128 * lr, rel=1e-12)
    assert estimate.h == estimate.w


def test_select_box_window_beats_a_far_candidate():
    cls, loc = crafted_rpn((2, 12, 12), fg=2.0)
    cls[0, 5 + 2, 0, 1] = 3.0  # better score, but at the window's edge
    estimate = select_box(
        HYPER, foreground_scores(cls), decode_anchor_boxes(loc, ANCHORS), tiled_window(S, 5),
        (300.0, 200.0, 128.0, 128.0), 0.5, (640, 480),
    )  # fmt: skip
    assert estimate.cx == pytest.approx(300 + 32)


def test_select_box_takes_the_first_of_equal_candidates():
    hyper = RPNHyper(family=Family.SIAMBAN, penalty_k=0.0, window_influence=0.0, lr=1.0)
    scores = np.full(4, 0.5, np.float32)
    boxes = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [20, 20, 20, 20], [20, 20, 20, 20]], np.float32)
    estimate = select_box(hyper, scores, boxes, np.zeros(4), (50.0, 50.0, 20.0, 20.0), 1.0, (640, 480))
    assert estimate.cx == 51.0


def test_select_box_clips_to_the_image_and_min_size():
    hyper = RPNHyper(family=Family.SIAMBAN, penalty_k=0.0, window_influence=0.0, lr=1.0)
    scores = np.ones(1, np.float32)
    far_small = np.array([[100], [-100], [4], [1000]], np.float32)
    estimate = select_box(hyper, scores, far_small, np.zeros(1), (600.0, 50.0, 20.0, 20.0), 1.0, (640, 480))
    assert (estimate.cx, estimate.cy) == (640.0, 0.0)
    assert (estimate.w, estimate.h) == (10.0, 480.0)


def test_ban_window_is_not_tiled():
    loc = np.full((1, 4, S, S), 32, np.float32)
    cls = np.zeros((1, 2, S, S), np.float32)
    hyper = RPNHyper(family=Family.SIAMBAN, penalty_k=0.0851, window_influence=0.4633, lr=0.4442)
    boxes = decode_point_boxes(loc, ban_points(8, S))
    estimate = select_box(
        hyper, foreground_scores(cls), boxes, cosine_window(S).ravel(), (300.0, 200.0, 128.0, 128.0), 0.5,
        (640, 480),
    )  # fmt: skip
    # uniform scores and sizes: the window's peak (the centre point) wins, so the centre stays
    assert (estimate.cx, estimate.cy) == (300.0, 200.0)
