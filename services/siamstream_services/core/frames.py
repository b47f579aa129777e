"""Frames at the service boundary: encoded or raw images in, BGR uint8 `HxWx3` arrays out.

Everything a client can get wrong is caught here with a clear message: an empty or unsupported payload,
a truncated file (decoders often return a partial image for those, so completeness is checked on the
container itself, and for JPEG on the compressed data too), raw bytes that disagree with the stated
shape. A frame over the byte or pixel limit is RESOURCE_EXHAUSTED; the pixel limit is checked on the
image header BEFORE decoding, so a small file that decodes to a huge image (a decompression bomb) never
allocates.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import simplejpeg

from .errors import InvalidArgument, ResourceExhausted

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
# Start-of-frame markers hold the image size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}
JPEG_SOS = 0xDA
# What libjpeg takes for a marker: 0xFF, then a code other than 0x00 (a stuffed 0xFF) and 0xFF (fill).
JPEG_MARKER = re.compile(rb"\xff[^\x00\xff]")
# libjpeg's warning for bytes it skipped before a marker.
JPEG_EXTRANEOUS = re.compile(r"extraneous bytes before marker 0x[0-9a-f]{2}")


class PixelFormat(StrEnum):
    """Layout of raw pixels."""

    BGR8 = "bgr8"
    RGB8 = "rgb8"
    GRAY8 = "gray8"

    @property
    def channels(self) -> int:
        return 1 if self is PixelFormat.GRAY8 else 3


@dataclass(frozen=True)
class EncodedImage:
    """A complete JPEG, PNG or WebP file."""

    data: bytes


@dataclass(frozen=True)
class RawImage:
    """Uncompressed pixels, rows top to bottom, channels interleaved, no row padding."""

    data: bytes
    width: int
    height: int
    pixel_format: PixelFormat | None


FrameImage = EncodedImage | RawImage


@dataclass(frozen=True)
class FrameLimits:
    """Largest frame accepted: payload bytes (encoded file or raw pixels) and width * height."""

    max_bytes: int
    max_pixels: int


def decode_frame(image: FrameImage, limits: FrameLimits) -> np.ndarray:
    """Decode or convert `image` into a BGR uint8 `HxWx3` array.

    Raises `ResourceExhausted` for a frame over `limits`, `InvalidArgument` for anything else wrong.
    """
    if not image.data:
        raise InvalidArgument("frame is empty: no image bytes")
    if len(image.data) > limits.max_bytes:
        raise ResourceExhausted(f"frame has {len(image.data)} bytes, the limit is {limits.max_bytes}")
    if isinstance(image, RawImage):
        return _convert_raw(image, limits)
    return _decode_encoded(image.data, limits)


def _check_pixels(width: int, height: int, limits: FrameLimits) -> None:
    if width < 1 or height < 1:
        raise InvalidArgument(f"frame is {width}x{height}: width and height must be at least 1")
    if width * height > limits.max_pixels:
        raise ResourceExhausted(
            f"frame is {width}x{height} = {width * height} pixels, the limit is {limits.max_pixels}"
        )


def _convert_raw(image: RawImage, limits: FrameLimits) -> np.ndarray:
    if image.pixel_format is None:
        raise InvalidArgument("raw frame has no pixel format (BGR8, RGB8 or GRAY8)")
    _check_pixels(image.width, image.height, limits)
    channels = image.pixel_format.channels
    expected = image.width * image.height * channels
    if len(image.data) != expected:
        raise InvalidArgument(
            f"raw {image.pixel_format.name} frame of {image.width}x{image.height} needs {expected} bytes, "
            f"got {len(image.data)}"
        )
    pixels = np.frombuffer(image.data, dtype=np.uint8).reshape(image.height, image.width, channels)
    if image.pixel_format is PixelFormat.GRAY8:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if image.pixel_format is PixelFormat.RGB8:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    return pixels.copy()  # writable, and independent of the request's buffer


def _decode_encoded(data: bytes, limits: FrameLimits) -> np.ndarray:
    width, height = _encoded_size(data)
    _check_pixels(width, height, limits)
    frame = _decode_jpeg(data) if data.startswith(JPEG_SOI) else None
    if frame is None:
        frame = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        raise InvalidArgument(f"frame could not be decoded ({len(data)} bytes, header says {width}x{height})")
    return frame


def _decode_jpeg(data: bytes) -> np.ndarray | None:
    """A JPEG decoded to BGR by libjpeg-turbo in strict mode (simplejpeg), or None where OpenCV has to
    decode it; InvalidArgument when it is truncated or corrupt.

    A scan cut short and closed with an end-of-image marker, or a frame header larger than the data that
    follows, looks complete from the markers; libjpeg only warns about it ("premature end of data
    segment") and OpenCV then returns the image with the rest filled with grey. Strict mode turns those
    warnings into errors, and its pixels are OpenCV's (both are libjpeg-turbo's accurate DCT and fancy
    upsampling), so one strict decode both checks and decodes the frame.

    Camera encoders often leave bytes before a marker, which libjpeg skips with a warning ("N extraneous
    bytes before marker 0xXX") and OpenCV decodes fine: accepted. Strict mode stops at the first warning,
    so the bytes between header segments are removed first (they would hide the whole image data); after
    them the warning comes from the image data: before the end-of-image marker, every scan was read in
    full; before a restart marker or a later scan of a progressive file, the data after it is not checked
    (the EOI check still catches a file cut off). Such a file is decoded by OpenCV, as it skips the
    bytes. Any other warning (a bad Huffman code, a restart marker missing) is corrupt data, refused.
    """
    try:
        return simplejpeg.decode_jpeg(_without_header_junk(data), colorspace="BGR", strict=True)
    except ValueError as error:
        if JPEG_EXTRANEOUS.search(str(error)):
            return None
        raise InvalidArgument(f"JPEG frame is truncated or corrupt: {error}") from None


def _header_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(start, marker code, end) of a JPEG's marker segments after SOI, up to its first scan header
    included, found as libjpeg finds them: at the next 0xFF followed by a marker code, skipping whatever
    precedes it. Ends early at a segment whose length is impossible or missing."""
    offset = 2
    # Each segment ends at least two bytes past the offset, so the walk ends within len(data) / 2 steps.
    while (found := JPEG_MARKER.search(data, offset)) is not None:
        start = found.start()
        marker = data[start + 1]
        if marker in JPEG_STANDALONE:
            end = start + 2
        elif start + 4 <= len(data) and (length := struct.unpack(">H", data[start + 2 : start + 4])[0]) >= 2:
            end = start + 2 + length
        else:
            return
        yield start, marker, end
        if marker == JPEG_SOS:
            return
        offset = end


def _without_header_junk(data: bytes) -> bytes:
    """`data` without the bytes between its header segments that libjpeg skips; unchanged when there are
    none (no copy: the compressed data is the whole frame, and copying it holds the GIL) or when its
    headers do not reach a scan (the decoder then says what is wrong)."""
    kept = [data[:2]]
    junk = False
    previous_end = 2
    for start, marker, end in _header_segments(data):
        junk = junk or start != previous_end
        kept.append(data[start:end])
        previous_end = end
        if marker == JPEG_SOS:
            if not junk:
                return data
            kept.append(data[end:])
            return b"".join(kept)
    return data


def _encoded_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header of a complete JPEG, PNG or WebP file."""
    if data.startswith(PNG_SIGNATURE):
        return _png_size(data)
    if data.startswith(JPEG_SOI):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    raise InvalidArgument("frame is not a JPEG, PNG or WebP file (unknown signature)")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise InvalidArgument("PNG frame is truncated: no image header")
    if not data.endswith(PNG_IEND):
        raise InvalidArgument("PNG frame is truncated: it does not end with the IEND chunk")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    # Some encoders pad the file with zeros after the end-of-image marker.
    if not data.rstrip(b"\x00").endswith(JPEG_EOI):
        raise InvalidArgument("JPEG frame is truncated: it does not end with the end-of-image marker")
    for start, marker, _ in _header_segments(data):
        if marker in JPEG_SOF and start + 9 <= len(data):
            height, width = struct.unpack(">HH", data[start + 5 : start + 9])
            return width, height
    raise InvalidArgument("JPEG frame is malformed: no frame header before the image data")


def _webp_size(data: bytes) -> tuple[int, int]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    if len(data) < riff_size + 8 or len(data) < 30:
        raise InvalidArgument(f"WebP frame is truncated: {len(data)} bytes of {riff_size + 8}")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise InvalidArgument(f"WebP frame has an unknown bitstream chunk {chunk!r}")
