"""SiamFC post-processing on crafted responses: scale choice, damped size update, displacement."""

import math

import numpy as np
import pytest

from siamstream.config import CropConfig, Family, FCHyper
from siamstream.tracking.siamfc import scale_factors, siamfc_update, upsampled_responses

HYPER = FCHyper(family=Family.SIAMFC)
CROP = CropConfig(base_size=0)  # 17x17 responses
TARGET = (300.0, 200.0, 64.0, 48.0)


def blob(row: float, col: float, peak: float) -> np.ndarray:
    rows, cols = np.mgrid[0:17, 0:17]
    return (peak * np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / 2.0)).astype(np.float32)


def responses(peaks: list[float], row: float = 8, col: float = 8) -> np.ndarray:
    return np.stack([blob(row, col, p) for p in peaks])[:, None]


def test_scale_factors():
    np.testing.assert_allclose(scale_factors(HYPER), [1 / 1.0375, 1.0, 1.0375])


def test_upsampling_by_16():
    assert upsampled_responses(responses([1, 1, 1]), HYPER).shape == (3, 272, 272)


@pytest.mark.parametrize(
    ("peaks", "scale_id"),
    [
        ([1.0, 0.9, 0.5], 0),  # 1.0 * 0.9745 beats 0.9
        ([1.0, 0.99, 0.5], 1),  # 0.9745 loses to 0.99
        ([0.5, 0.9, 0.95], 2),  # 0.95 * 0.9745 = 0.926 beats 0.9
    ],
)
def test_scale_choice_and_damped_size_update(peaks, scale_id):
    estimate = siamfc_update(HYPER, CROP, responses(peaks), TARGET, 510.0)
    scale = (1 - 0.59) + 0.59 * scale_factors(HYPER)[scale_id]
    assert estimate.search_size == pytest.approx(510.0 * scale, rel=1e-12)
    assert estimate.w == float(np.float32(np.float32(64.0) * scale))
    assert estimate.h == float(np.float32(np.float32(48.0) * scale))


def test_centred_peak_keeps_the_centre():
    estimate = siamfc_update(HYPER, CROP, responses([0.0, 1.0, 0.0]), TARGET, 510.0)
    # cell 8 upsamples to 135.5, the map centre, a tie of 135 and 136: the first wins, -0.5 upsampled
    # px = -0.25 crop px = -0.5 image px (search side 510 = 2 x 255)
    assert (estimate.cx, estimate.cy) == (299.5, 199.5)
    assert estimate.score == pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-3)


def test_displacement_in_image_pixels():
    # peak 4 response cells right and 2 up: 4 * 8 = 32 crop px = 64 image px at search side 510
    estimate = siamfc_update(HYPER, CROP, responses([0.0, 1.0, 0.0], row=6, col=12), TARGET, 510.0)
    # cell 12 upsamples to 16 * 12.5 - 0.5 = 199.5 (a tie of 199 and 200), the window picks 199, nearer
    # the centre 135.5: 63.5 upsampled px = 31.75 crop px = 63.5 image px; rows: 104 - 135.5 = -31.5
    assert estimate.cx == 300.0 + 63.5
    assert estimate.cy == 200.0 - 31.5
