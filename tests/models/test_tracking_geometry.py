"""Box conventions and crops, checked against naive full-frame-padding implementations."""

import math
import tracemalloc
from typing import cast

import cv2
import numpy as np
import pytest

from siamstream.registry import get_config
from siamstream.tracking import geometry
from siamstream.tracking.geometry import (
    box_from_center,
    center_from_box,
    channel_average,
    context_size,
    crop_patch,
    crop_patch_siamfc,
    siamfc_box_from_center,
    siamfc_center_from_box,
    square_region,
    to_model_layout,
)
from siamstream.tracking.step import init_track, prepare_search

MEAN = (100.7, 50.2, 200.5)


def naive_pysot_crop(frame, center, model_size, side, channel_average):
    """pysot's procedure: pad the whole frame with the truncated mean, then slice, then maybe resize."""
    c = (side + 1) / 2
    xmin = math.floor(center[0] - c + 0.5)
    ymin = math.floor(center[1] - c + 0.5)
    xmax, ymax = xmin + side - 1, ymin + side - 1
    height, width = frame.shape[:2]
    left, top = max(0, -xmin), max(0, -ymin)
    right, bottom = max(0, xmax - width + 1), max(0, ymax - height + 1)
    padded = np.zeros((height + top + bottom, width + left + right, 3), np.uint8)
    padded[:] = np.asarray(channel_average).astype(np.uint8)
    padded[top : top + height, left : left + width] = frame
    patch = padded[ymin + top : ymax + top + 1, xmin + left : xmax + left + 1]
    if model_size != side:
        patch = cv2.resize(patch, (model_size, model_size))
    return patch


def naive_siamfc_crop(frame, center, size, out_size, channel_average):
    """siamfc-pytorch's procedure: uniform copyMakeBorder with the mean, slice, always resize."""
    side = round(size)
    corner = np.round(np.array([center[1], center[0]], dtype=np.float32) - (side - 1) / 2)
    corners = np.round(np.concatenate([corner, corner + side])).astype(int)
    pad = max(0, int(np.concatenate([-corners[:2], corners[2:] - frame.shape[:2]]).max()))
    if pad > 0:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=channel_average)
    corners = corners + pad
    return cv2.resize(frame[corners[0] : corners[2], corners[1] : corners[3]], (out_size, out_size))


@pytest.fixture(scope="module")
def frame():
    return np.random.default_rng(0).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)


def test_pysot_box_conventions():
    assert center_from_box([10, 20, 30, 41]) == (24.5, 40.0, 30.0, 41.0)
    assert box_from_center(24.5, 40.0, 30.0, 41.0) == (9.5, 19.5, 30.0, 41.0)


def test_siamfc_box_conventions_round_trip():
    cx, cy, w, h = siamfc_center_from_box([10, 20, 30, 41])
    assert tuple(map(float, (cx, cy, w, h))) == (23.5, 39.0, 30.0, 41.0) and cx.dtype == np.float32
    assert siamfc_box_from_center(cx, cy, w, h) == (10.0, 20.0, 30.0, 41.0)


def test_context_size():
    # (60 + 50) * (40 + 50) = 9900
    assert context_size(60, 40, 0.5) == pytest.approx(math.sqrt(9900))
    assert round(context_size(60, 40, 0.5)) == 99


def test_crop_inside_the_image_is_the_frame(frame):
    patch = crop_patch(frame, (50.0, 40.0), 21, 21, MEAN)
    # c = 11, xmin = floor(50 - 11 + 0.5) = 39, ymin = 29
    np.testing.assert_array_equal(patch, frame[29:50, 39:60])


def test_crop_straddling_the_corner_pads_with_the_truncated_mean(frame):
    patch = crop_patch(frame, (2.0, 3.0), 31, 31, MEAN)
    # c = 16, xmin = floor(2 - 16 + 0.5) = -14, ymin = -13
    assert patch.shape == (31, 31, 3)
    np.testing.assert_array_equal(patch[:13, :], np.broadcast_to([100, 50, 200], (13, 31, 3)))
    np.testing.assert_array_equal(patch[:, :14], np.broadcast_to([100, 50, 200], (31, 14, 3)))
    np.testing.assert_array_equal(patch[13:, 14:], frame[:18, :17])


def test_crop_entirely_outside_is_all_padding(frame):
    region = square_region(frame, 200, -50, 10, np.array([1, 2, 3], np.uint8))
    np.testing.assert_array_equal(region, np.broadcast_to([1, 2, 3], (10, 10, 3)))


@pytest.mark.parametrize("model_size", [127, 255])
def test_fast_crop_equals_full_padding(frame, model_size):
    rng = np.random.default_rng(1)
    for _ in range(40):
        center = (float(rng.uniform(-30, 190)), float(rng.uniform(-30, 150)))
        side = int(rng.integers(5, 300))
        for original in (side, model_size):
            expected = naive_pysot_crop(frame, center, model_size, original, MEAN)
            np.testing.assert_array_equal(crop_patch(frame, center, model_size, original, MEAN), expected)


def test_siamfc_crop_equals_copy_make_border(frame):
    rng = np.random.default_rng(2)
    for _ in range(40):
        center = (np.float32(rng.uniform(-30, 190)), np.float32(rng.uniform(-30, 150)))
        size = float(rng.uniform(5, 300))
        expected = naive_siamfc_crop(frame, center, size, 255, MEAN)
        np.testing.assert_array_equal(crop_patch_siamfc(frame, center, size, 255, MEAN), expected)


@pytest.mark.parametrize("center", [(-200.0, 100.0), (700.0, 500.0)])
def test_large_padded_crops_sample_the_frame_like_the_reference(monkeypatch, center):
    """Past `EXACT_CROP_MAX_SIDE` a padded crop is sampled from the frame without building the padded
    square; on a medium square, where both can run, it matches the references' pad-then-resize."""
    frame = np.random.default_rng(4).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    expected = naive_pysot_crop(frame, center, 255, 1500, MEAN)
    expected_fc = naive_siamfc_crop(frame, np.float32(center), 1500.0, 255, MEAN)
    monkeypatch.setattr(geometry, "EXACT_CROP_MAX_SIDE", 1000)
    pairs = [
        (crop_patch(frame, center, 255, 1500, MEAN), expected),
        # np.float32 of a pair is a float32 array of 2 (numpy types it as a scalar).
        (
            crop_patch_siamfc(
                frame, cast("tuple[np.float32, np.float32]", np.float32(center)), 1500.0, 255, MEAN
            ),
            expected_fc,
        ),
    ]
    for patch, reference in pairs:
        difference = np.abs(patch.astype(np.int16) - reference.astype(np.int16))
        assert patch.shape == reference.shape == (255, 255, 3)
        # Samples placed to 1/32 px: at most 255/64 per axis between pixel-noise neighbours.
        assert difference.max() <= 8 and difference.mean() < 1
        assert difference.any()  # the bounded path ran (the exact one is byte-identical)


@pytest.mark.parametrize(
    ("name", "fast_motion", "side"),
    [("siamrpn_alex", False, 287), ("siamban_acm_r50", True, 510), ("siamfc_alexnet", False, 255)],
)
def test_the_largest_box_on_a_4k_frame_crops_in_bounded_memory(name, fast_motion, side):
    """The largest box `check_box` accepts on a 3840x2160 frame (context region 7680 px) asks for padded
    squares of 7,680 px (template), 17,355 (AlexNet-RPN), 30,841 (ACM's fast-motion crop) and three around
    15,420 (SiamFC): 0.2-2.8 GB each if built. The crops allocate a few copies of their output instead."""
    config = get_config(name)
    frame = np.zeros((2160, 3840, 3), np.uint8)
    tracemalloc.start()
    try:
        state, template = init_track(config, frame, (0.0, 0.0, 3840.0, 3840.0))
        template_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        request = prepare_search(config, state.model_copy(update={"fast_motion": fast_motion}), frame)
        search_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert request.crops.shape[1:] == (3, side, side)
    # The crops, their stack and its transposed copy, plus Python's own small objects.
    assert template_peak < 4 * template.crop.nbytes + 2**20
    assert search_peak < 4 * request.crops.nbytes + 2**20


def test_siamfc_pads_with_the_rounded_mean(frame):
    patch = crop_patch_siamfc(frame, (np.float32(0), np.float32(0)), 9, 9, MEAN)
    # round-half-even: 100.7 -> 101, 50.2 -> 50, 200.5 -> 200
    np.testing.assert_array_equal(patch[0, 0], [101, 50, 200])


def test_to_model_layout():
    patches = [np.full((4, 4, 3), (1, 2, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)]
    batch = to_model_layout(patches)
    assert batch.shape == (2, 3, 4, 4) and batch.flags.c_contiguous
    assert batch[0, 2, 1, 1] == 3 and batch[1].sum() == 0


def test_channel_average_is_numpys_mean_bit_for_bit():
    frame = np.random.default_rng(3).integers(0, 256, size=(333, 517, 3), dtype=np.uint8)
    np.testing.assert_array_equal(channel_average(frame), np.mean(frame, axis=(0, 1)))
