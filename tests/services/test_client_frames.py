"""Frame encoding of the client: PNG is lossless, JPEG quality trades size, bad input is refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from siamstream_services.client.frames import ImageFormat, encode_frame
from tests.services.session_fixtures import moving_target_frames


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_target_frames(1)


def test_encode_frame_png_is_lossless_and_jpeg_quality_trades_size(frames: list[np.ndarray]) -> None:
    png = encode_frame(frames[0], ImageFormat.PNG)
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert np.array_equal(decoded, frames[0])
    low, high = encode_frame(frames[0], jpeg_quality=30), encode_frame(frames[0], jpeg_quality=95)
    assert low[:2] == b"\xff\xd8" and len(low) < len(high)
    with pytest.raises(ValueError, match="uint8"):
        encode_frame(frames[0].astype(np.float32))
    with pytest.raises(ValueError, match=r"0\.\.100"):
        encode_frame(frames[0], jpeg_quality=101)
