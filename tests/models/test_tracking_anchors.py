"""Anchors, points and windows: hand-checked layouts."""

import numpy as np
import pytest

from siamstream.tracking.anchors import anchor_shapes, ban_points, grid_offsets, rpn_anchors
from siamstream.tracking.window import cosine_window, normalised_window, tiled_window

RATIOS = (0.33, 0.5, 1.0, 2.0, 3.0)


def test_anchor_shapes_are_pysots():
    assert anchor_shapes(8, RATIOS, (8.0,)) == [(104, 32), (88, 40), (64, 64), (40, 80), (32, 96)]


def test_grid_offsets_centre_the_map():
    offsets = grid_offsets(8, 25)
    assert offsets.dtype == np.float32
    assert offsets[0] == -96 and offsets[12] == 0 and offsets[24] == 96
    assert grid_offsets(8, 21)[0] == -80


def test_rpn_anchors_layout_is_anchor_major():
    anchors = rpn_anchors(8, RATIOS, (8.0,), 25)
    assert anchors.shape == (5 * 625, 4) and anchors.dtype == np.float32
    # anchor a, cell (i, j) -> row a*625 + i*25 + j, centre (-96 + 8j, -96 + 8i)
    a, i, j = 3, 4, 17
    np.testing.assert_array_equal(anchors[a * 625 + i * 25 + j], [-96 + 8 * j, -96 + 8 * i, 40, 80])
    np.testing.assert_array_equal(anchors[0], [-96, -96, 104, 32])
    np.testing.assert_array_equal(anchors[-1], [96, 96, 32, 96])
    for index, (w, h) in enumerate([(104, 32), (88, 40), (64, 64), (40, 80), (32, 96)]):
        block = anchors[index * 625 : (index + 1) * 625]
        assert np.all(block[:, 2] == w) and np.all(block[:, 3] == h)


def test_rpn_anchors_are_cached_and_read_only():
    anchors = rpn_anchors(8, RATIOS, (8.0,), 25)
    assert anchors is rpn_anchors(8, RATIOS, (8.0,), 25)
    with pytest.raises(ValueError):
        anchors[0, 0] = 1


def test_ban_points():
    points = ban_points(8, 25)
    assert points.shape == (625, 2) and points.dtype == np.float32
    np.testing.assert_array_equal(points[0], [-96, -96])
    np.testing.assert_array_equal(points[1], [-88, -96])
    np.testing.assert_array_equal(points[25], [-96, -88])
    np.testing.assert_array_equal(points[12 * 25 + 12], [0, 0])


def test_cosine_window_is_zero_on_the_border_and_peaks_at_the_centre():
    window = cosine_window(25)
    assert window.dtype == np.float64 and window.shape == (25, 25)
    assert np.all(window[0] == 0) and np.all(window[:, -1] == 0)
    assert window[12, 12] == 1.0 and tuple(map(int, np.unravel_index(window.argmax(), window.shape))) == (
        12,
        12,
    )
    # hanning(25)[6] = 0.5 - 0.5 cos(2 pi 6 / 24) = 0.5
    assert window[12, 6] == pytest.approx(0.5)
    assert window[6, 6] == pytest.approx(0.25)


def test_tiled_window_repeats_per_anchor():
    tiled = tiled_window(25, 5)
    assert tiled.shape == (3125,)
    for a in range(5):
        np.testing.assert_array_equal(tiled[a * 625 : (a + 1) * 625], cosine_window(25).ravel())


def test_normalised_window_sums_to_one():
    assert normalised_window(272).sum() == pytest.approx(1.0)
