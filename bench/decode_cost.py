"""The service's JPEG decode against the two passes it replaced, side by side in one run.

    .venv/bin/python bench/decode_cost.py [--repeats 200] [--quality 95]

`decode_frame` decodes a JPEG once, with libjpeg-turbo in strict mode (simplejpeg), which both refuses a
truncated or corrupt file and gives OpenCV's pixels. Until session 6 the service made two passes: a strict
check at 1/8 scale to grey, then `cv2.imdecode`. Both arms run on the same synthetic frames (640x480 and
1280x720) through `siamstream.benchmark.harness.compare` (warmed, alternating call by call); it prints
medians, quartiles and the ratio to the two-pass arm, and checks that both give the same pixels.
"""

from __future__ import annotations

import argparse
from functools import partial

import cv2
import numpy as np
import simplejpeg

from siamstream.benchmark.harness import compare, comparison_lines
from siamstream.benchmark.machine import describe_machine, machine_line
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream_services.core.frames import EncodedImage, FrameLimits, decode_frame

LIMITS = FrameLimits(max_bytes=64 << 20, max_pixels=1 << 26)


def two_passes(data: bytes) -> np.ndarray | None:
    """The decode as it was: the strict check at 1/8 scale to grey, then OpenCV's full decode."""
    simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8, strict=True)
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def one_decode(data: bytes) -> np.ndarray:
    return decode_frame(EncodedImage(data), LIMITS)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--quality", type=int, default=95)
    args = parser.parse_args()
    print(machine_line(describe_machine()))
    for width, height in ((640, 480), (1280, 720)):
        frame = generate_sequence(SequenceSpec(width=width, height=height, length=2, seed=1)).frame(0)
        data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, args.quality])[1].tobytes()
        before = two_passes(data)
        same = before is not None and np.array_equal(before, one_decode(data))
        comparison = compare(
            {"check + OpenCV": partial(two_passes, data), "one strict decode": partial(one_decode, data)},
            args.repeats,
        )
        print(f"\n{width}x{height} JPEG, quality {args.quality}, {len(data) // 1024} KB; same pixels: {same}")
        print("\n".join(comparison_lines(comparison, width=20)))


if __name__ == "__main__":
    main()
