"""The session service on a REAL redis-server: exact boxes, replicas sharing one Redis, Redis restarts.

Replicas are built by `open_server` from `store_url=redis://...` (embedded TorchScript inference, the real
siamrpn_alex package with seeded weights) and driven over real gRPC on loopback. Redis servers run on
free loopback ports and are stopped by pid (tests/services/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from siamstream_services.grpc_api.server import HEALTH_PROBE_SESSION
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.record import owner_key_id
from siamstream_services.store.redis_store import RedisSessionStore
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.v1 import tracking_pb2 as pb
from tests.services.replica_fixtures import (
    KEY,
    NOT_SERVING,
    SERVING,
    Replica,
    assert_offline_results,
    offline_results,
    serving_replica,
)
from tests.services.session_fixtures import (
    API_KEY_A,
    INIT_BOX,
    TRACKER,
    box_message,
    moving_target_frames,
    status_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

CODE = grpc.StatusCode
FRAME_COUNT = 7
# The longest a PushFrame may take to report that Redis is gone (the store's own bound is about 2 s).
UNAVAILABLE_BOUND_S = 5.0
# Health is re-read every health_interval_s, each probe bounded by a second.
HEALTH_BOUND_S = ServiceSettings.model_fields["health_interval_s"].default + 3.0
STALE = re.compile(r"stale frame (\d+), session is at (\d+)")
# Keys under the stores' default prefix: the health probe's session, a camera's results stream (cameras are
# stored under their owner's id).
HEALTH_PROBE_KEY = f"siamstream:v1:session:{HEALTH_PROBE_SESSION}"
CAMERA_RESULTS_KEY = "siamstream:v1:camera-results:{owner}/{camera_id}"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_target_frames(FRAME_COUNT)


@pytest.fixture(scope="module")
def expected(package_dir: Path, frames: list[np.ndarray]):
    return offline_results(package_dir, frames)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replicas(package_dir: Path, redis_server: RedisServer) -> AsyncIterator[tuple[Replica, Replica]]:
    """Two replicas (own backend, store client and manager each) sharing the session-wide Redis."""
    async with (
        serving_replica(package_dir, store_url=redis_server.url) as first,
        serving_replica(package_dir, store_url=redis_server.url) as second,
    ):
        yield first, second


@pytest_asyncio.fixture(loop_scope="module")
async def redis_reader(redis_server: RedisServer) -> AsyncIterator[RedisSessionStore]:
    """A store client of the shared Redis that reads records the way the replicas wrote them."""
    store = RedisSessionStore.from_url(redis_server.url, 60.0)
    yield store
    await store.aclose()


@pytest.fixture
def persistent_redis(redis_binary: str) -> Iterator[RedisServer]:
    """A private redis-server with an append-only file (every write fsynced), restartable."""
    server = RedisServer(redis_binary, appendonly=True)
    server.start()
    yield server
    server.remove()


async def test_one_replica_on_redis_gives_the_offline_boxes(
    replicas: tuple[Replica, Replica], frames: list[np.ndarray], expected, redis_reader: RedisSessionStore
) -> None:
    replica = replicas[0]
    started = await replica.start(frames[0])
    results = [started.result]
    for number, frame in enumerate(frames[1:], start=1):
        results.append(await replica.push(started.session_id, frame, number))

    assert_offline_results(results, expected)
    record = await redis_reader.get(started.session_id)
    assert (
        record is not None and record.version == FRAME_COUNT and record.last_client_frame == FRAME_COUNT - 1
    )


async def test_frames_alternating_between_two_replicas_give_the_offline_boxes(
    replicas: tuple[Replica, Replica], frames: list[np.ndarray], expected
) -> None:
    started = await replicas[1].start(frames[0])
    results = [started.result]
    for number, frame in enumerate(frames[1:], start=1):
        results.append(await replicas[number % 2].push(started.session_id, frame, number))

    assert_offline_results(results, expected)
    views = [await replica.get(started.session_id) for replica in replicas]
    assert views[0] == views[1]
    assert views[0].frame_count == FRAME_COUNT


async def test_concurrent_pushes_through_two_replicas_lose_and_reorder_nothing(
    replicas: tuple[Replica, Replica],
    frames: list[np.ndarray],
    package_dir: Path,
    redis_reader: RedisSessionStore,
) -> None:
    session_id = (await replicas[0].start(frames[0])).session_id
    numbers = list(range(1, FRAME_COUNT))
    random.Random(5).shuffle(numbers)

    # Every push is in flight at once; each replica serialises its own, the two race through Redis.
    answers = await asyncio.gather(
        *(replicas[n % 2].push(session_id, frames[n], n) for n in numbers), return_exceptions=True
    )

    applied = {
        n: answer for n, answer in zip(numbers, answers, strict=True) if isinstance(answer, pb.TrackResult)
    }
    refused = {n: answer for n, answer in zip(numbers, answers, strict=True) if n not in applied}
    history = sorted(applied, key=lambda n: applied[n].frame_index)
    # No lost update: the applied frames hold the indices 1..K, once each; no reordering: in number order.
    assert [applied[n].frame_index for n in history] == list(range(1, len(applied) + 1))
    assert history == sorted(history)
    assert [applied[n].client_frame_number for n in history] == history
    # The highest number is never stale, and with 3 rivals it cannot lose the 5 write rounds either.
    assert history[-1] == FRAME_COUNT - 1
    for number, error in refused.items():
        assert isinstance(error, grpc.aio.AioRpcError), error
        assert error.code() == CODE.FAILED_PRECONDITION, error.details()
        details = error.details()
        assert details is not None
        stale = STALE.fullmatch(details)
        assert stale is not None and int(stale[1]) == number
        # It was refused because of a frame that was applied, at or after its own number.
        assert int(stale[2]) in applied and int(stale[2]) >= number
    # Each applied frame was tracked from the state its predecessor wrote.
    assert_offline_results(
        [applied[n] for n in history],
        offline_results(package_dir, [frames[0], *(frames[n] for n in history)])[1:],
    )
    record = await redis_reader.get(session_id)
    assert record is not None and record.version == len(applied) + 1
    view = await replicas[1].get(session_id)
    assert view.frame_count == len(applied) + 1
    last = pb.TrackResult()
    last.CopyFrom(applied[history[-1]])
    last.ClearField("timings")  # the session keeps the result, not the timings of the call
    assert view.last_result == last


async def test_persistent_redis_restart_keeps_the_session_and_its_boxes(
    package_dir: Path, persistent_redis: RedisServer, frames: list[np.ndarray], expected
) -> None:
    async with serving_replica(package_dir, store_url=persistent_redis.url) as replica:
        await replica.wait_health(SERVING, HEALTH_BOUND_S)
        started = await replica.start(frames[0])
        session_id = started.session_id
        results = [started.result]
        for number in (1, 2):
            results.append(await replica.push(session_id, frames[number], number))
        before = await replica.get(session_id)

        persistent_redis.stop()
        began = time.monotonic()
        code, details = await status_of(replica.push(session_id, frames[3], 3))
        assert time.monotonic() - began < UNAVAILABLE_BOUND_S
        assert (code, "session store unavailable" in details) == (CODE.UNAVAILABLE, True), details
        assert await replica.wait_health(NOT_SERVING, HEALTH_BOUND_S) < HEALTH_BOUND_S

        persistent_redis.start()
        await replica.wait_health(SERVING, HEALTH_BOUND_S)
        assert await replica.get(session_id) == before  # the refused frame changed nothing
        for number in range(3, FRAME_COUNT):  # the same service, no restart: it reconnected by itself
            results.append(await replica.push(session_id, frames[number], number))

    assert_offline_results(results, expected)


async def test_redis_restart_without_persistence_loses_the_session_cleanly(
    package_dir: Path, make_redis_server: Callable[[], RedisServer], frames: list[np.ndarray]
) -> None:
    server = make_redis_server()
    async with serving_replica(package_dir, store_url=server.url) as replica:
        session_id = (await replica.start(frames[0])).session_id
        await replica.push(session_id, frames[1], 1)

        server.freeze()  # a hung Redis: the port accepts, nothing answers
        began = time.monotonic()
        code, _ = await status_of(replica.push(session_id, frames[2], 2))
        assert (code, time.monotonic() - began < UNAVAILABLE_BOUND_S) == (CODE.UNAVAILABLE, True)

        server.restart()  # no persistence: every session is gone
        began = time.monotonic()
        code, details = await status_of(replica.push(session_id, frames[2], 2))
        assert (code, time.monotonic() - began < UNAVAILABLE_BOUND_S) == (CODE.NOT_FOUND, True), details
        assert (await status_of(replica.get(session_id)))[0] == CODE.NOT_FOUND

        restarted = await replica.start(frames[2], number=2)
        assert restarted.session_id != session_id
        result = await replica.push(restarted.session_id, frames[3], 3)
        assert (result.frame_index, result.client_frame_number) == (1, 3)


async def test_health_loop_outlives_a_probe_that_raises(
    package_dir: Path, make_redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A probe failing in a way the loop does not expect (here a hash under the probe's key that is no
    session record: reading it raises instead of answering "no such session") turns the replica
    NOT_SERVING, and the loop lives on: SERVING again once the store reads cleanly."""
    server = make_redis_server()
    redis = Redis.from_url(server.url)
    try:
        async with serving_replica(package_dir, store_url=server.url) as replica:
            await replica.wait_health(SERVING, HEALTH_BOUND_S)
            await redis.hset(HEALTH_PROBE_KEY, "owner", "nobody")
            await replica.wait_health(NOT_SERVING, HEALTH_BOUND_S)
            assert "health probe failed" in caplog.text
            await redis.delete(HEALTH_PROBE_KEY)
            await replica.wait_health(SERVING, HEALTH_BOUND_S)
    finally:
        await redis.aclose()


async def xread_blocked(redis: Redis) -> None:
    """Return once a client of `redis` is blocked in XREAD (a watcher waiting for the next result)."""
    async with asyncio.timeout(5.0):
        while not any(
            client["cmd"] == "xread" and "b" in client["flags"] for client in await redis.client_list()
        ):
            await asyncio.sleep(0.01)


async def test_watch_track_misses_no_result_published_between_two_reads(
    package_dir: Path, make_redis_server: Callable[[], RedisServer]
) -> None:
    """Results a worker publishes while the watcher is between two reads of the results stream (here a
    burst: the first wakes the watcher, the others land before it reads again) all reach the client."""
    server = make_redis_server()
    redis = Redis.from_url(server.url)
    try:
        async with serving_replica(package_dir, store_url=server.url) as replica:
            attach = pb.AttachCameraRequest(
                camera_id="cam",
                url="rtsp://192.0.2.1/stream",  # TEST-NET-1: never read here, no worker runs
                box=box_message(INIT_BOX),
                tracker=TRACKER,
            )
            target_id = (await replica.stub.AttachCamera(attach, metadata=KEY)).target_id
            request = pb.WatchTrackRequest(camera_id="cam", target_id=target_id)
            watch = replica.stub.WatchTrack(request, metadata=KEY)
            await xread_blocked(redis)
            # One round trip of XADDs, each entry as a worker's `CameraDirectory.publish` writes it.
            async with redis.pipeline(transaction=False) as burst:
                for frame_index in range(5):
                    result = pb.CameraTrackResult(
                        camera_id="cam", target_id=target_id, result=pb.TrackResult(frame_index=frame_index)
                    )
                    fields: dict[FieldT, EncodableT] = {
                        "target": target_id,
                        "result": result.SerializeToString(),
                    }
                    burst.xadd(
                        CAMERA_RESULTS_KEY.format(owner=owner_key_id(API_KEY_A), camera_id="cam"), fields
                    )
                await burst.execute()
            received = []
            with contextlib.suppress(TimeoutError):  # the assertion below names what was missed
                async with asyncio.timeout(5.0):
                    async for answer in watch:
                        received.append(answer.result.frame_index)
                        if len(received) == 5:
                            break
            watch.cancel()
    finally:
        await redis.aclose()
    assert received == [0, 1, 2, 3, 4]
