"""Frame decoding at the service boundary: formats, truncation, limits, raw pixel layouts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import simplejpeg

from siamstream_services.core.errors import InvalidArgument, ResourceExhausted
from siamstream_services.core.frames import (
    EncodedImage,
    FrameLimits,
    PixelFormat,
    RawImage,
    _without_header_junk,
    decode_frame,
)
from tests.services.session_fixtures import encode

LIMITS = FrameLimits(max_bytes=4_000_000, max_pixels=640 * 480)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A 120x160 frame with smooth content, so lossy codecs stay close to it."""
    ys, xs = np.mgrid[0:120, 0:160]
    return np.dstack([xs * 1.5, ys * 2.0, (xs + ys) * 0.9]).astype(np.uint8)


@pytest.mark.parametrize("extension", [".png", ".jpg", ".webp"])
def test_encoded_formats_decode_to_bgr(frame: np.ndarray, extension: str) -> None:
    decoded = decode_frame(EncodedImage(encode(frame, extension)), LIMITS)
    assert decoded.shape == (120, 160, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frame.astype(int)).mean() < 3.0


def test_png_is_lossless(frame: np.ndarray) -> None:
    np.testing.assert_array_equal(decode_frame(EncodedImage(encode(frame)), LIMITS), frame)


def test_grayscale_jpeg_becomes_three_channels(frame: np.ndarray) -> None:
    decoded = decode_frame(EncodedImage(encode(frame[:, :, 0], ".jpg")), LIMITS)
    assert decoded.shape == (120, 160, 3)


@pytest.mark.parametrize("extension", [".png", ".jpg", ".webp"])
@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_files_are_invalid(frame: np.ndarray, extension: str, keep: float) -> None:
    data = encode(frame, extension)
    with pytest.raises(InvalidArgument, match="truncated"):
        decode_frame(EncodedImage(data[: int(len(data) * keep)]), LIMITS)


def test_jpeg_padded_with_zeros_after_its_end_decodes(frame: np.ndarray) -> None:
    assert decode_frame(EncodedImage(encode(frame, ".jpg") + b"\0" * 16), LIMITS).shape == (120, 160, 3)


# Real encoder settings: baseline 4:2:0 colour, grey, progressive, and restart markers every 4 MCUs.
JPEG_KINDS = {
    "baseline": (False, []),
    "grey": (True, []),
    "progressive": (False, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    "restart_markers": (False, [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]),
}


def jpeg(frame: np.ndarray, kind: str) -> bytes:
    grey, params = JPEG_KINDS[kind]
    ok, data = cv2.imencode(".jpg", frame[:, :, 0] if grey else frame, params)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("kind", JPEG_KINDS)
def test_every_kind_of_complete_jpeg_decodes_as_opencv_decodes_it(frame: np.ndarray, kind: str) -> None:
    data = jpeg(frame, kind)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_frame(EncodedImage(data), LIMITS), expected)


@pytest.mark.parametrize("kind", JPEG_KINDS)
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_jpeg_scan_cut_then_closed_is_invalid(frame: np.ndarray, kind: str, keep: float) -> None:
    """The markers look complete, but the compressed data ends early: OpenCV alone fills the rest grey."""
    data = jpeg(frame, kind)
    scan = data.rindex(b"\xff\xda")  # the last scan: a progressive file has several
    cut = data[: scan + int((len(data) - scan) * keep)] + b"\xff\xd9"
    assert cv2.imdecode(np.frombuffer(cut, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV takes it
    with pytest.raises(InvalidArgument, match="JPEG frame is truncated or corrupt"):
        decode_frame(EncodedImage(cut), LIMITS)


@pytest.mark.parametrize("kind", JPEG_KINDS)
@pytest.mark.parametrize("side", ["width", "height"])
def test_jpeg_header_larger_than_its_data_is_invalid(frame: np.ndarray, kind: str, side: str) -> None:
    data = bytearray(jpeg(frame, kind))
    sof = next(data.index(marker) for marker in (b"\xff\xc0", b"\xff\xc2") if marker in data)
    offset = sof + (7 if side == "width" else 5)
    data[offset : offset + 2] = (2 * int.from_bytes(data[offset : offset + 2], "big")).to_bytes(2, "big")
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(InvalidArgument, match="JPEG frame is truncated or corrupt"):
        decode_frame(EncodedImage(bytes(data)), LIMITS)


def with_bytes_before(data: bytes, marker: int, occurrence: int = 0) -> bytes:
    """`data` with 3 stray bytes before the `occurrence`-th `marker`, as some camera encoders leave them."""
    place = -1
    for _ in range(occurrence + 1):
        place = data.index(bytes((0xFF, marker)), place + 1)
    return data[:place] + b"\x12\x34\x56" + data[place:]


# (kind, marker, occurrence): between header segments (quantisation, Huffman tables, scan header), before
# a restart marker, before a later scan of a progressive file, and before the end-of-image marker.
STRAY_BYTES = [
    ("baseline", 0xDB, 0),
    ("baseline", 0xC4, 2),
    ("baseline", 0xDA, 0),
    ("restart_markers", 0xD1, 0),
    ("progressive", 0xDA, 3),
    ("progressive", 0xD9, 0),
]


@pytest.mark.parametrize(("kind", "marker", "occurrence"), STRAY_BYTES)
def test_jpeg_with_bytes_before_a_marker_decodes_as_opencv_decodes_it(
    frame: np.ndarray, kind: str, marker: int, occurrence: int
) -> None:
    data = with_bytes_before(jpeg(frame, kind), marker, occurrence)
    with pytest.raises(ValueError, match="extraneous bytes before marker"):  # libjpeg warns about them
        simplejpeg.decode_jpeg(data, strict=True)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_frame(EncodedImage(data), LIMITS), expected)


@pytest.mark.parametrize("kind", JPEG_KINDS)
def test_a_jpeg_without_stray_header_bytes_is_decoded_without_a_copy(frame: np.ndarray, kind: str) -> None:
    # Copying the compressed data holds the GIL (an 8K frame's 8 MB, twice): done only to drop stray bytes.
    data = jpeg(frame, kind)
    assert _without_header_junk(data) is data
    stray = with_bytes_before(data, 0xC4)
    assert _without_header_junk(stray) == data


@pytest.mark.parametrize("kind", JPEG_KINDS)
@pytest.mark.parametrize("marker", [0xDB, 0xC4, 0xDA])
def test_bytes_before_a_header_marker_do_not_hide_a_cut_scan(
    frame: np.ndarray, kind: str, marker: int
) -> None:
    data = with_bytes_before(jpeg(frame, kind), marker)
    scan = data.rindex(b"\xff\xda")
    cut = data[: scan + (len(data) - scan) // 2] + b"\xff\xd9"
    with pytest.raises(InvalidArgument, match=r"JPEG frame is truncated or corrupt: .*premature end"):
        decode_frame(EncodedImage(cut), LIMITS)


@pytest.mark.parametrize("subsampling", ["444", "420"])
def test_cmyk_jpeg_decodes_as_opencv_decodes_it(frame: np.ndarray, subsampling: str) -> None:
    cmyk = np.ascontiguousarray(np.dstack([255 - frame, np.full(frame.shape[:2], 40, np.uint8)]))
    data = simplejpeg.encode_jpeg(cmyk, colorspace="CMYK", colorsubsampling=subsampling)
    assert simplejpeg.decode_jpeg_header(data)[2] == "YCCK"  # Adobe's transformed CMYK
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_frame(EncodedImage(data), LIMITS), expected)


def test_corrupt_jpeg_body_is_invalid(frame: np.ndarray) -> None:
    data = bytearray(encode(frame, ".jpg"))
    start = data.index(b"\xff\xda")  # start of scan: garble the header that precedes it
    data[2:start] = b"\x00" * (start - 2)
    with pytest.raises(InvalidArgument):
        decode_frame(EncodedImage(bytes(data)), LIMITS)


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"", "empty"), (b"GIF89a\x01\x00\x01\x00", "not a JPEG, PNG or WebP"), (b"\x00" * 64, "not a JPEG")],
)
def test_empty_and_unknown_payloads_are_invalid(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        decode_frame(EncodedImage(payload), LIMITS)


def test_too_many_bytes_is_resource_exhausted(frame: np.ndarray) -> None:
    data = encode(frame)
    with pytest.raises(ResourceExhausted, match=f"{len(data)} bytes"):
        decode_frame(EncodedImage(data), FrameLimits(max_bytes=len(data) - 1, max_pixels=LIMITS.max_pixels))


@pytest.mark.parametrize("extension", [".png", ".jpg", ".webp"])
def test_too_many_pixels_is_refused_before_decoding(extension: str) -> None:
    # A flat 2000x2000 image compresses to a few kB: the header check must refuse it, not the decoder.
    data = encode(np.zeros((2000, 2000, 3), np.uint8), extension)
    assert len(data) < LIMITS.max_bytes
    with pytest.raises(ResourceExhausted, match="2000x2000"):
        decode_frame(EncodedImage(data), LIMITS)


def test_raw_formats_convert_to_bgr(frame: np.ndarray) -> None:
    bgr = decode_frame(RawImage(frame.tobytes(), 160, 120, PixelFormat.BGR8), LIMITS)
    rgb = decode_frame(RawImage(frame[:, :, ::-1].tobytes(), 160, 120, PixelFormat.RGB8), LIMITS)
    gray = decode_frame(RawImage(frame[:, :, 0].tobytes(), 160, 120, PixelFormat.GRAY8), LIMITS)
    np.testing.assert_array_equal(bgr, frame)
    np.testing.assert_array_equal(rgb, frame)
    np.testing.assert_array_equal(gray, np.repeat(frame[:, :, :1], 3, axis=2))
    assert bgr.flags.writeable


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (RawImage(b"\0" * 100, 10, 10, PixelFormat.BGR8), InvalidArgument, "needs 300 bytes, got 100"),
        (RawImage(b"\0" * 300, 10, 10, None), InvalidArgument, "no pixel format"),
        (RawImage(b"\0" * 3, 0, 1, PixelFormat.BGR8), InvalidArgument, "at least 1"),
        (RawImage(b"\0" * 3, 1000, 1000, PixelFormat.BGR8), ResourceExhausted, "1000x1000"),
    ],
)
def test_bad_raw_frames(image: RawImage, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decode_frame(image, LIMITS)


def test_decoded_png_matches_cv2(frame: np.ndarray) -> None:
    data = encode(frame)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_frame(EncodedImage(data), LIMITS), expected)
