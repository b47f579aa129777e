"""Retrying a frame is safe on a REAL redis-server that pauses while the frame's write is on its way.

The Redis server is SIGSTOPped right before the frame's compare-and-set is sent: the service gives up
(UNAVAILABLE, "may be retried"), then the server resumes and applies the write it had received. The
client's retry of that frame, with its frame number, must get the stored result and apply nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from siamstream_services.store.record import SessionRecord
from siamstream_services.store.redis_store import RedisSessionStore
from siamstream_services.testing.redis_server import RedisServer
from tests.services.replica_fixtures import Replica, assert_offline_results, offline_results, serving_replica
from tests.services.session_fixtures import moving_target_frames, status_of

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

# The store gives up on a hung Redis within about 2 s (store_timeout_s).
UNAVAILABLE_BOUND_S = 5.0
# How long the resumed server may take to apply the write it received while stopped.
APPLIED_BOUND_S = 5.0


class FreezingStore(RedisSessionStore):
    """The Redis store, stopping `server` right before its next compare-and-set when one is set."""

    freeze_before_write: RedisServer | None = None

    async def compare_and_set(self, record: SessionRecord, expected_version: int) -> bool:
        server, self.freeze_before_write = self.freeze_before_write, None
        if server is not None:
            server.freeze()
        return await super().compare_and_set(record, expected_version)


async def frame_count_reaches(replica: Replica, session_id: str, count: int, timeout_s: float) -> int:
    """The session's frame count once it is `count`, or the last one read after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (frame_count := (await replica.get(session_id)).frame_count) != count:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return frame_count


async def test_a_frame_answered_unavailable_but_applied_is_applied_once_when_retried(
    package_dir: Path, make_redis_server: Callable[[], RedisServer]
) -> None:
    server = make_redis_server()
    frames = moving_target_frames(4)
    store = FreezingStore.from_url(server.url, 60.0)
    async with serving_replica(package_dir, store=store) as replica:
        session_id = (await replica.start(frames[0], number=0)).session_id
        results = [await replica.push(session_id, frames[1], 1)]

        store.freeze_before_write = server
        began = time.monotonic()
        try:
            code, details = await status_of(replica.push(session_id, frames[2], 2))
            answered_s = time.monotonic() - began
        finally:
            server.thaw()
        assert (code, answered_s < UNAVAILABLE_BOUND_S) == (grpc.StatusCode.UNAVAILABLE, True)
        # The write the stopped server had received lands after all: the frame is applied.
        assert await frame_count_reaches(replica, session_id, 3, APPLIED_BOUND_S) == 3, details
        applied = (await replica.get(session_id)).last_result

        retried = await replica.push(session_id, frames[2], 2)
        retried_again = await replica.push(session_id, frames[2], 2)

        retried.ClearField("timings")  # measured by each call; the session keeps none
        retried_again.ClearField("timings")
        assert retried == applied and retried_again == applied
        assert (await replica.get(session_id)).frame_count == 3
        results += [retried, await replica.push(session_id, frames[3], 3)]

    # Tracked from the state the frame left once: the offline boxes of frames 1..3.
    assert_offline_results(results, offline_results(package_dir, frames)[1:])
