"""SiamCAR post-processing on crafted maps: region bounds, coarse-to-fine peak, centre and size update."""

import math

import cv2
import numpy as np
import pytest

from siamstream.config import CARHyper, CropConfig, Family
from siamstream.tracking.car import car_update, fine_search_region, normalised_centerness

S = 25
HYPER = CARHyper(family=Family.SIAMCAR, penalty_k=0.2, window_influence=0.45, lr=0.35)
CROP = CropConfig()


def test_normalised_centerness():
    cen = np.array([[[[1.0, 2.0], [3.0, 5.0]]]], np.float32)
    np.testing.assert_allclose(normalised_centerness(cen), [[0, 0.25], [0.5, 1]])
    np.testing.assert_array_equal(
        normalised_centerness(np.full((1, 1, 2, 2), 7, np.float32)), np.ones((2, 2))
    )


def test_fine_search_region_by_hand():
    lrtb = np.zeros((4, S, S), np.float32)
    # coarse cell of upsampled (96, 96): round(96 / 7.72) = round(12.44) = 12
    lrtb[:, 12, 12] = [5, 100, 30, 40]  # clipped to [int(12.7), int(55.88)] = [12, 55]
    rows, cols = fine_search_region((96, 96), lrtb, 193, S, HYPER, 127)
    # halves: l = int(12 / 2) = 6, t = int(55 / 2) = 27, r = int(30 / 2) = 15, b = int(40 / 2) = 20
    assert (rows.start, rows.stop) == (96 - 27, 96 + 20 + 1)
    assert (cols.start, cols.stop) == (96 - 6, 96 + 15 + 1)


def test_fine_search_region_stops_at_the_border():
    lrtb = np.full((4, S, S), 50, np.float32)
    rows, cols = fine_search_region((2, 190), lrtb, 193, S, HYPER, 127)
    # t = int(min(2, 50) / 2) = 1, r = int(min(193 - 190, 50) / 2) = 1
    assert (rows.start, rows.stop) == (1, 2 + 25 + 1)
    assert (cols.start, cols.stop) == (190 - 25, 192)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def crafted_maps():
    """A: centre cell (12, 12) p=0.8; B: (12, 15) p=0.9, inside A's region; C: (2, 2) p=0.99, outside."""
    cls = np.zeros((1, 2, S, S), np.float32)
    cls[0, 1] = logit(0.001)
    for (row, col), p in {(12, 12): 0.8, (12, 15): 0.9, (2, 2): 0.99}.items():
        cls[0, 1, row, col] = logit(p)
    loc = np.full((1, 4, S, S), 110, np.float32)  # 220x220 crop px everywhere, region halves 27
    cen = np.ones((1, 1, S, S), np.float32)
    cen[0, 0, 24, 24] = 0
    return cls, loc, cen


def upsampled_peak_column(col: int) -> int:
    spike = np.zeros((S, S), np.float64)
    spike[12, col] = 1
    return int(np.argmax(cv2.resize(spike, (193, 193), interpolation=cv2.INTER_CUBIC)[96]))


def test_coarse_peak_on_windowed_score_then_fine_peak_on_raw_score():
    # target 110x110 image px at scale_z 2 is 220x220 crop px: no penalty in the score map
    estimate = car_update(HYPER, CROP, crafted_maps(), (300.0, 200.0, 110.0, 110.0), 2.0, (640, 480))
    col_b = upsampled_peak_column(15)
    assert abs(col_b - 119) <= 1
    assert estimate.cx == pytest.approx(300 + (col_b + 31 - 127) / 2)
    assert estimate.cy == pytest.approx(200 + (upsampled_peak_column(12) + 31 - 127) / 2)
    assert estimate.score == pytest.approx(0.9, abs=0.02)
    # size: (l + r) / scale_z = 110 equals the target, whatever the rate
    assert estimate.w == pytest.approx(110) and estimate.h == pytest.approx(110)


def test_size_update_compares_image_size_with_crop_size_like_the_reference():
    cls, loc, cen = crafted_maps()
    loc[:] = 25  # 50x50 crop px -> 25x25 image px at scale_z 2
    estimate = car_update(HYPER, CROP, (cls, loc, cen), (300.0, 200.0, 50.0, 50.0), 2.0, (640, 480))
    # the reference compares 25 image px with 50 * 2 crop px: scale change 4, penalty exp(-3 k)
    lr = math.exp(-(4 - 1) * 0.2) * estimate.score * 0.35
    assert estimate.w == pytest.approx(lr * 25 + (1 - lr) * 50, rel=1e-6)
    assert estimate.score == pytest.approx(0.8, abs=0.02)  # fine peak stays on A: B is 23 px away


def test_no_minimum_size_and_clipping():
    cls = np.full((1, 2, S, S), 0, np.float32)
    cls[0, 1] = logit(0.001)
    cls[0, 1, 12, 15] = logit(0.9)
    loc = np.full((1, 4, S, S), 4, np.float32)  # 8x8 crop px = 4x4 image px at scale_z 2
    cen = np.ones((1, 1, S, S), np.float32)
    cen[0, 0, 0, 0] = 0
    estimate = car_update(HYPER, CROP, (cls, loc, cen), (639.5, 100.0, 8.0, 8.0), 2.0, (640, 480))
    assert 4 < estimate.w < 8 and 4 < estimate.h < 8  # shrinks below 10 px, no minimum
    assert estimate.cx == 640.0  # 639.5 + (119 + 31 - 127) / 2 = 651, clipped to the image width
