"""One client's large frames never hold up another client's calls (issue 8, item 3).

A client pushes 8K JPEG frames (each takes the service a few hundred milliseconds to decode) while a
probe on the event loop, the loop that answers every client, measures how late it gets to run. Decoding,
cropping and post-processing run in worker threads, so during a push the probe is never late by more than a
small share of one frame's decode, measured in the same run: a ratio, not a wall-time bound. With the decode
on the event loop, whatever waited on the loop during a decode (the probe, another client's call) waited
for all of it, in every push.

The figure is the median over the pushes of the probe's worst lateness during each: on a shared machine the
whole process is sometimes stalled for tens of milliseconds (CI once saw one stall of 80 ms against a bound
of 76). A lone stall raises one push's figure, not the median; a decode on the loop raises every push's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamstream_services.v1 import tracking_pb2 as pb
from tests.services.session_fixtures import API_KEY_A, TRACKER, auth, box_message, running_service

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]

A = auth(API_KEY_A)
BIG_WIDTH, BIG_HEIGHT = 7680, 4320
PUSHES = 5  # odd: the median is one push's own figure
CALL_TIMEOUT_S = 60.0
PROBE_INTERVAL_S = 0.001
# A probe that waited for a decode on the event loop was late by all of it; one that did not is late by
# the loop's own work between two probes and its turns at the GIL with the decoding and inference threads
# on two busy cores: mostly under 40 ms, a quarter of a decode here.
DECODE_SHARE = 0.5


def big_jpeg() -> bytes:
    """An 8K JPEG with texture everywhere (about 8 MB), so that decoding it takes real work."""
    ys, xs = np.mgrid[0:BIG_HEIGHT, 0:BIG_WIDTH]
    image: np.ndarray = np.dstack([(xs // 7) % 256, (ys // 5) % 256, ((xs + ys) // 9) % 256]).astype(np.uint8)
    image = cv2.add(image, np.random.default_rng(3).integers(0, 24, image.shape, dtype=np.uint8))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


async def test_large_frames_never_hold_up_the_event_loop(package_dir: Path) -> None:
    encoded = big_jpeg()
    async with running_service(package_dir, max_frame_pixels=BIG_WIDTH * BIG_HEIGHT) as service:
        stub = service.stub
        start = pb.StartTrackRequest(
            tracker=TRACKER, frame=pb.Frame(encoded=encoded), box=box_message((3600.0, 2000.0, 480.0, 320.0))
        )
        session_id = (await stub.StartTrack(start, metadata=A, timeout=CALL_TIMEOUT_S)).session_id

        pushing_number = 1  # the push in progress (or about to start), charged with each probe's lateness

        async def push_big_frames() -> list[pb.TrackResult]:
            nonlocal pushing_number
            results = []
            for number in range(1, PUSHES + 1):
                pushing_number = number
                request = pb.PushFrameRequest(
                    session_id=session_id, frame=pb.Frame(encoded=encoded, client_frame_number=number)
                )
                results.append((await stub.PushFrame(request, metadata=A, timeout=CALL_TIMEOUT_S)).result)
            return results

        loop = asyncio.get_running_loop()
        pushing = asyncio.create_task(push_big_frames())
        worst_lateness_s = dict.fromkeys(range(1, PUSHES + 1), 0.0)
        probes = 0
        while not pushing.done():  # ends with the pushes, each bounded by CALL_TIMEOUT_S
            number = pushing_number
            before = loop.time()
            await asyncio.sleep(PROBE_INTERVAL_S)
            lateness_s = loop.time() - before - PROBE_INTERVAL_S
            worst_lateness_s[number] = max(worst_lateness_s[number], lateness_s)
            probes += 1
        results = await pushing

    worst_ms = sorted(seconds * 1000 for seconds in worst_lateness_s.values())
    median_worst_ms = worst_ms[PUSHES // 2]
    fastest_decode_ms = min(result.timings.decode_ms for result in results)
    figures = (
        f"{probes} probes; the worst lateness in each push {', '.join(f'{ms:.1f}' for ms in worst_ms)} ms, "
        f"median {median_worst_ms:.1f} ms; fastest decode {fastest_decode_ms:.1f} ms"
    )
    assert median_worst_ms < DECODE_SHARE * fastest_decode_ms, figures
