"""Camera URLs, camera ids and per-key quotas through the real service on a REAL redis-server (issue 8).

One service (embedded siamrpn_alex, Redis store, two API keys) runs for the module on a private Redis,
emptied before each test, so that "nothing was written" is checked on the whole keyspace. The session
quota is checked on the memory store too. The cameras of an older release (bare keys), the workers'
writes after a move or detach and the camera API's shutdown are checked on the camera API and directory
themselves, over the same Redis.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc import aio
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import CameraDirectory, CameraStatus, TargetSpec, camera_key
from siamstream_services.cameras.urls import CameraUrlError
from siamstream_services.core.errors import InvalidArgument, Unavailable
from siamstream_services.grpc_api import cameras as camera_api
from siamstream_services.grpc_api.cameras import RESOLVER_THREADS, CameraApi
from siamstream_services.grpc_api.server import TrackingServer, open_server
from siamstream_services.ingest.metrics import IngestMetrics
from siamstream_services.ingest.worker import IngestWorker
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.record import owner_key_id
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.session_fixtures import (
    API_KEY_A,
    API_KEY_B,
    INIT_BOX,
    TRACKER,
    auth,
    box_message,
    moving_target_frames,
    png_frame,
    running_service,
    status_of,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

CODE = grpc.StatusCode
KEY_A, KEY_B = auth(API_KEY_A), auth(API_KEY_B)
OWNER_A, OWNER_B = owner_key_id(API_KEY_A), owner_key_id(API_KEY_B)
PREFIX = "siamstream:v1:"
MAX_SESSIONS_PER_OWNER = 2
CAMERA_SETTINGS: dict[str, Any] = {"max_cameras_per_owner": 2, "max_cameras": 3}
# Attached, never read (no worker runs unless a test starts one): TEST-NET-1 addresses.
URL_B = "rtsp://viewer:b-password@192.0.2.10:8554/live?token=b-secret"
URL_A = "rtsp://192.0.2.20:8554/live"


@pytest.fixture(scope="module")
def private_redis(redis_binary: str) -> Iterator[RedisServer]:
    """This module's own redis-server, so that whole-keyspace comparisons see only this module's keys."""
    with RedisServer(redis_binary, appendonly=False) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis(private_redis: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(private_redis.url)
    yield client
    await client.aclose()


@dataclass
class Running:
    server: TrackingServer
    port: int


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(package_dir: Path, private_redis: RedisServer) -> AsyncIterator[Running]:
    """The service with small quotas: 2 sessions and 2 cameras per key, 3 cameras in all."""
    settings = ServiceSettings(
        package_dir=package_dir,
        store_url=private_redis.url,
        api_keys=[API_KEY_A, API_KEY_B],
        metrics_port=0,
        drain_grace_s=0.5,
        max_sessions_per_owner=MAX_SESSIONS_PER_OWNER,
    )
    server = open_server(settings, IngestSettings(**CAMERA_SETTINGS))
    port = await server.start("127.0.0.1:0")
    yield Running(server, port)
    await server.drain(grace_s=0.5)


@pytest_asyncio.fixture(loop_scope="module")
async def stub(service: Running, redis: Redis) -> AsyncIterator[pb_grpc.TrackingServiceStub]:
    """A client of the service, on an emptied Redis."""
    await redis.flushdb()
    async with aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        yield pb_grpc.TrackingServiceStub(channel)


def attach_request(camera_id: str, url: str) -> pb.AttachCameraRequest:
    return pb.AttachCameraRequest(camera_id=camera_id, url=url, box=box_message(INIT_BOX), tracker=TRACKER)


async def keyspace(redis: Redis) -> dict[bytes | str, object]:
    """Every key with its whole value."""
    readers: dict[bytes | str, Callable[[bytes | str], Awaitable[object]]] = {
        b"string": redis.get,
        b"hash": redis.hgetall,
        b"set": redis.smembers,
        b"zset": lambda key: redis.zrange(key, 0, -1, withscores=True),
        b"stream": redis.xrange,
    }
    return {key: await readers[await redis.type(key)](key) for key in await redis.keys("*")}


async def listed(stub: pb_grpc.TrackingServiceStub, key: tuple) -> list[tuple[str, str, list[str]]]:
    cameras = (await stub.ListCameras(pb.ListCamerasRequest(), metadata=key)).cameras
    return [(c.camera_id, c.url, [t.target_id for t in c.targets]) for c in cameras]


def injection_url(redis_server: RedisServer) -> str:
    """The URL of the report: Redis commands after CR LF, one of them handing B's camera to A."""
    return (
        f"rtsp://127.0.0.1:{redis_server.port}/x\r\nSET k v\r\n"
        f"HSET {PREFIX}camera:{camera_key(OWNER_B, 'cam-b')} owner {OWNER_A}\r\nX: y"
    )


async def test_the_injection_url_is_refused_and_redis_is_unchanged(
    stub: pb_grpc.TrackingServiceStub, redis: Redis, private_redis: RedisServer
) -> None:
    b_target = (await stub.AttachCamera(attach_request("cam-b", URL_B), metadata=KEY_B)).target_id
    before, size = await keyspace(redis), await redis.dbsize()

    code, details = await status_of(
        stub.AttachCamera(attach_request("cam-a", injection_url(private_redis)), metadata=KEY_A)
    )

    assert code is CODE.INVALID_ARGUMENT and "U+000D" in details and "SET" not in details
    assert await keyspace(redis) == before and await redis.dbsize() == size
    assert await listed(stub, KEY_A) == []
    assert await listed(stub, KEY_B) == [("cam-b", "rtsp://192.0.2.10:8554/live", [b_target])]


BAD_URLS = {
    "upper-case scheme": "RTSP://192.0.2.20:8554/live",
    "leading space": " rtsp://192.0.2.20:8554/live",
    "tab in the scheme": "rt\tsp://192.0.2.20:8554/live",
    "NUL": "rtsp://192.0.2.20:8554/live\x00",
    "percent-encoded CR LF": "rtsp://192.0.2.20:8554/x%0D%0AGET%20k",
    "port out of range": "rtsp://192.0.2.20:65536/live",
    "short IPv4": "rtsp://127.1:6379/",
    "metadata": "rtsp://169.254.169.254/latest/meta-data",
    "metadata over IPv6": "rtsp://[fd00:ec2::254]/",
    "Alibaba metadata": "rtsp://100.100.100.200/",
    "link-local": "rtsp://169.254.1.1:554/cam",
    "IPv6 link-local": "rtsp://[fe80::1]/cam",
    "mapped metadata": "rtsp://[::ffff:169.254.169.254]/",
    "this host": "rtsp://0.0.0.0:6379/",
}


async def test_malformed_and_denied_urls_are_invalid_argument_and_write_nothing(
    stub: pb_grpc.TrackingServiceStub, redis: Redis
) -> None:
    await stub.AttachCamera(attach_request("cam-b", URL_B), metadata=KEY_B)
    before = await keyspace(redis)
    answers = {}
    for name, url in BAD_URLS.items():
        code, details = await status_of(stub.AttachCamera(attach_request("cam-a", url), metadata=KEY_A))
        answers[name] = code
        assert details.startswith("url"), (name, details)

    assert answers == {name: CODE.INVALID_ARGUMENT for name in BAD_URLS}
    assert await keyspace(redis) == before


async def test_refusals_and_listings_never_show_credentials_or_the_query(
    stub: pb_grpc.TrackingServiceStub,
) -> None:
    code, details = await status_of(
        stub.AttachCamera(
            attach_request("cam-a", "rtsp://admin:a-password@169.254.169.254/x?token=a-secret"),
            metadata=KEY_A,
        )
    )
    target = (await stub.AttachCamera(attach_request("cam-b", URL_B), metadata=KEY_B)).target_id

    assert code is CODE.INVALID_ARGUMENT and "169.254.169.254" in details
    assert "a-password" not in details and "a-secret" not in details and "admin" not in details
    assert await listed(stub, KEY_B) == [("cam-b", "rtsp://192.0.2.10:8554/live", [target])]


async def test_another_keys_camera_id_reveals_nothing_and_stays_out_of_reach(
    stub: pb_grpc.TrackingServiceStub, redis: Redis
) -> None:
    b_target = (await stub.AttachCamera(attach_request("shared", URL_B), metadata=KEY_B)).target_id
    b_camera = await redis.hgetall(f"{PREFIX}camera:{camera_key(OWNER_B, 'shared')}")

    # B's id answers A as a free id does: with a new camera of A's own, whatever its URL.
    taken = await stub.AttachCamera(attach_request("shared", URL_A), metadata=KEY_A)
    free = await stub.AttachCamera(attach_request("free", URL_A), metadata=KEY_A)
    assert taken.camera_id == "shared" and taken.target_id not in (b_target, free.target_id)

    watch = stub.WatchTrack(pb.WatchTrackRequest(camera_id="shared", target_id=b_target), metadata=KEY_A)
    assert await watch.code() is CODE.NOT_FOUND
    detach = pb.DetachCameraRequest(camera_id="shared", target_id=b_target)
    assert (await status_of(stub.DetachCamera(detach, metadata=KEY_A)))[0] is CODE.NOT_FOUND
    await stub.DetachCamera(pb.DetachCameraRequest(camera_id="shared"), metadata=KEY_A)  # A's own, gone

    assert await listed(stub, KEY_A) == [("free", URL_A, [free.target_id])]
    assert await listed(stub, KEY_B) == [("shared", "rtsp://192.0.2.10:8554/live", [b_target])]
    assert await redis.hgetall(f"{PREFIX}camera:{camera_key(OWNER_B, 'shared')}") == b_camera


async def test_camera_quotas_are_per_key_and_resource_exhausted_with_the_limit(
    stub: pb_grpc.TrackingServiceStub,
) -> None:
    for camera_id in ("a-1", "a-2"):
        await stub.AttachCamera(attach_request(camera_id, URL_A), metadata=KEY_A)

    code, details = await status_of(stub.AttachCamera(attach_request("a-3", URL_A), metadata=KEY_A))
    assert code is CODE.RESOURCE_EXHAUSTED and "2 cameras" in details and "per key" in details
    await stub.AttachCamera(attach_request("a-1", URL_A), metadata=KEY_A)  # a target more is no camera more
    await stub.AttachCamera(attach_request("b-1", URL_B), metadata=KEY_B)  # B is not held up by A
    code, details = await status_of(stub.AttachCamera(attach_request("b-2", URL_B), metadata=KEY_B))
    assert code is CODE.RESOURCE_EXHAUSTED and "deployment reads 3 cameras" in details

    await stub.DetachCamera(pb.DetachCameraRequest(camera_id="a-1"), metadata=KEY_A)
    await stub.AttachCamera(attach_request("a-3", URL_A), metadata=KEY_A)
    assert [camera[0] for camera in await listed(stub, KEY_A)] == ["a-2", "a-3"]


async def test_concurrent_attaches_never_exceed_the_camera_quota(stub: pb_grpc.TrackingServiceStub) -> None:
    calls = [stub.AttachCamera(attach_request(f"cam-{index}", URL_A), metadata=KEY_A) for index in range(8)]
    answers = await asyncio.gather(*calls, return_exceptions=True)

    refused = [answer for answer in answers if isinstance(answer, aio.AioRpcError)]
    assert len(answers) - len(refused) == CAMERA_SETTINGS["max_cameras_per_owner"]
    assert {error.code() for error in refused} == {CODE.RESOURCE_EXHAUSTED}
    assert len(await listed(stub, KEY_A)) == CAMERA_SETTINGS["max_cameras_per_owner"]


async def start_track(stub: pb_grpc.TrackingServiceStub, key: tuple) -> pb.StartTrackResponse:
    request = pb.StartTrackRequest(
        tracker=TRACKER, frame=png_frame(moving_target_frames(1)[0]), box=box_message(INIT_BOX)
    )
    return await stub.StartTrack(request, metadata=key)


async def assert_session_quota(stub: pb_grpc.TrackingServiceStub) -> None:
    started = [await start_track(stub, KEY_A) for _ in range(MAX_SESSIONS_PER_OWNER)]

    code, details = await status_of(start_track(stub, KEY_A))
    assert code is CODE.RESOURCE_EXHAUSTED and f"{MAX_SESSIONS_PER_OWNER} live sessions" in details
    await start_track(stub, KEY_B)  # B has its own quota
    await stub.StopTrack(pb.StopTrackRequest(session_id=started[0].session_id), metadata=KEY_A)
    await start_track(stub, KEY_A)


async def test_session_quota_per_key_on_redis(stub: pb_grpc.TrackingServiceStub) -> None:
    await assert_session_quota(stub)


async def test_session_quota_per_key_on_the_memory_store(package_dir: Path) -> None:
    async with running_service(package_dir, max_sessions_per_owner=MAX_SESSIONS_PER_OWNER) as running:
        await assert_session_quota(running.stub)


async def store_older_release_camera(redis: Redis) -> None:
    """A camera as a release before scoped keys stored it: under its bare id `old`, with a session, a box,
    a status and a result of its target `t1`."""
    target = TargetSpec(target_id="t1", tracker=TRACKER, box=INIT_BOX, anchor_unix=time.time())
    await redis.hset(
        f"{PREFIX}camera:old", mapping={"owner": OWNER_A, "url": URL_A, "target:t1": target.model_dump_json()}
    )
    await redis.hset(f"{PREFIX}camera-sessions:old", "t1", "session-1")
    await redis.hset(f"{PREFIX}camera-boxes:old", "t1", "[1.0, 2.0, 3.0, 4.0]")
    await redis.hset(f"{PREFIX}camera-status:old", mapping={"state": "streaming", "worker": "w0"})
    await redis.xadd(f"{PREFIX}camera-results:old", {"target": "t1", "result": b"old result"})
    await redis.sadd(f"{PREFIX}cameras", "old")


@pytest_asyncio.fixture(loop_scope="module")
async def directory(service: Running, redis: Redis) -> AsyncIterator[CameraDirectory]:
    """A camera directory of its own over the emptied Redis, as another replica or worker has."""
    await redis.flushdb()
    directory = CameraDirectory(
        Redis.from_url(str(service.server.settings.store_url)), IngestSettings(**CAMERA_SETTINGS)
    )
    yield directory
    await directory.aclose()


async def test_a_camera_stored_by_an_older_release_moves_under_its_owner(
    stub: pb_grpc.TrackingServiceStub, directory: CameraDirectory, redis: Redis
) -> None:
    await store_older_release_camera(redis)
    keys = await directory.scope_unscoped(await directory.camera_keys())

    assert keys == [camera_key(OWNER_A, "old")]
    assert await redis.exists(f"{PREFIX}camera:old", f"{PREFIX}camera-sessions:old") == 0
    assert await redis.hget(f"{PREFIX}camera-sessions:{camera_key(OWNER_A, 'old')}", "t1") == b"session-1"
    assert await listed(stub, KEY_A) == [("old", URL_A, ["t1"])]
    assert await listed(stub, KEY_B) == []
    await stub.DetachCamera(pb.DetachCameraRequest(camera_id="old"), metadata=KEY_A)
    assert await redis.keys("*") == []


async def test_a_worker_never_hands_an_injection_url_stored_earlier_to_ffmpeg(
    stub: pb_grpc.TrackingServiceStub,
    service: Running,
    redis: Redis,
    private_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A URL stored before URLs were checked (by an older release, under its bare camera id) is refused
    by the worker too, before every connection: FFmpeg would write its commands into this Redis."""
    await stub.AttachCamera(attach_request("cam-b", URL_B), metadata=KEY_B)
    target = TargetSpec(target_id="t1", tracker=TRACKER, box=INIT_BOX, anchor_unix=time.time())
    evil: dict[FieldT, EncodableT] = {
        "owner": OWNER_A,
        "url": injection_url(private_redis),
        "target:t1": target.model_dump_json(),
    }
    await redis.hset(f"{PREFIX}camera:evil", mapping=evil)
    await redis.sadd(f"{PREFIX}cameras", "evil")
    b_camera = await redis.hgetall(f"{PREFIX}camera:{camera_key(OWNER_B, 'cam-b')}")
    settings = IngestSettings(
        **CAMERA_SETTINGS, claim_interval_s=0.2, lease_ttl_ms=1500, backoff_initial_s=0.1, backoff_max_s=0.2
    )
    directory = CameraDirectory(Redis.from_url(str(service.server.settings.store_url)), settings)
    metrics = IngestMetrics(CollectorRegistry())
    worker = IngestWorker(directory, service.server.manager, metrics, worker_id="w1")
    caplog.set_level(logging.WARNING, logger="siamstream_services.ingest.capture")
    running = asyncio.get_running_loop().create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            while sum("camera url '' refused" in message for message in caplog.messages) < 3:
                await asyncio.sleep(0.05)
        assert camera_key(OWNER_A, "evil") in worker.cameras  # moved under its owner, and read
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.release()
        await directory.aclose()

    assert await redis.exists("k") == 0
    assert await redis.hgetall(f"{PREFIX}camera:{camera_key(OWNER_B, 'cam-b')}") == b_camera
    assert [camera[0] for camera in await listed(stub, KEY_B)] == ["cam-b"]
    assert await listed(stub, KEY_A) == [("evil", "", ["t1"])]  # shown without any of its URL


async def test_list_cameras_shows_an_older_release_camera_before_any_worker_ran(
    service: Running, directory: CameraDirectory, redis: Redis
) -> None:
    """A replica moves the cameras of an older release before its first camera call answers: they used to
    stay out of ListCameras until a worker's claim round moved them."""
    await store_older_release_camera(redis)
    api = CameraApi(directory, service.server.manager)
    try:
        cameras = (await api.list(OWNER_A)).cameras
    finally:
        api.close()

    assert [(c.camera_id, c.url, [t.target_id for t in c.targets]) for c in cameras] == [
        ("old", URL_A, ["t1"])
    ]
    assert await redis.exists(f"{PREFIX}camera:old") == 0


# A key of each kind the new name of camera `old` may already have, with what it holds there.
SCOPED_LEFTOVERS: dict[str, dict[FieldT, EncodableT] | None] = {
    "camera": {"owner": OWNER_A, "url": URL_B},
    "camera-sessions": {"t9": "session-new"},
    "camera-boxes": {"t9": "[5.0, 6.0, 7.0, 8.0]"},
    "camera-status": {"state": "stale", "worker": "w9"},
    "camera-results": None,  # a stream
}


@pytest.mark.parametrize("kind", SCOPED_LEFTOVERS)
async def test_a_camera_is_not_moved_over_any_key_of_its_new_name(
    directory: CameraDirectory, redis: Redis, kind: str
) -> None:
    """RENAME overwrites: one key of the new name (its owner attached the id through the new release, or a
    runner left results there) keeps the camera under its bare key, and both untouched."""
    await store_older_release_camera(redis)
    leftover = f"{PREFIX}{kind}:{camera_key(OWNER_A, 'old')}"
    fields = SCOPED_LEFTOVERS[kind]
    if fields is None:
        await redis.xadd(leftover, {"target": "t9", "result": b"new result"})
    else:
        await redis.hset(leftover, mapping=fields)
    before = await keyspace(redis)

    assert await directory.scope_unscoped(await directory.camera_keys()) == ["old"]
    assert await keyspace(redis) == before


async def test_writes_for_a_moved_or_detached_camera_recreate_nothing(
    directory: CameraDirectory, redis: Redis
) -> None:
    """A runner learns of a move or a detach at its worker's next claim round. Its writes until then used
    to recreate the keys removed, for good (no TTL): now each is made only while its target is attached."""
    status = CameraStatus("streaming", "w1", 0, None)

    async def runner_writes(key: str, target_id: str) -> None:
        await directory.publish(key, target_id, b"late result", (1.0, 2.0, 3.0, 4.0))
        await directory.set_session(key, target_id, "late-session")

    await store_older_release_camera(redis)
    await directory.scope_unscoped(await directory.camera_keys())
    moved = await keyspace(redis)
    await runner_writes("old", "t1")  # a runner still on the bare key
    await directory.report_status("old", status)
    assert await keyspace(redis) == moved

    spec = TargetSpec(target_id="", tracker=TRACKER, box=INIT_BOX, anchor_unix=time.time())
    second = await directory.attach(OWNER_A, "old", URL_A, spec)
    assert await directory.detach(OWNER_A, "old", "t1") is not None
    one_target = await keyspace(redis)
    await runner_writes(camera_key(OWNER_A, "old"), "t1")  # the detached target
    assert await keyspace(redis) == one_target

    assert await directory.detach(OWNER_A, "old", "") is not None
    await runner_writes(camera_key(OWNER_A, "old"), second)  # the detached camera
    await directory.report_status(camera_key(OWNER_A, "old"), status)
    assert await redis.keys("*") == []


async def test_close_ends_the_resolver_threads_and_refuses_lookups_not_started(
    service: Running, directory: CameraDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A draining replica's resolver threads used to live on; an attach queued behind slow lookups is now
    UNAVAILABLE (retried on another replica), and so is one that comes after close()."""
    release, started = threading.Event(), threading.Semaphore(0)

    def slow_lookup(*args: object) -> None:
        started.release()
        release.wait(5.0)
        raise CameraUrlError("host resolved too late for this test")

    monkeypatch.setattr(camera_api, "check_camera_address", slow_lookup)
    earlier = {thread for thread in threading.enumerate() if thread.name.startswith("camera-resolver")}
    api = CameraApi(directory, service.server.manager)
    calls = [
        asyncio.ensure_future(api.attach(OWNER_A, attach_request(f"cam-{index}", URL_A)))
        for index in range(RESOLVER_THREADS + 1)
    ]
    for _ in range(RESOLVER_THREADS):
        assert await asyncio.to_thread(started.acquire, True, 5.0)
    resolvers = {t for t in threading.enumerate() if t.name.startswith("camera-resolver")} - earlier

    api.close()
    release.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    with pytest.raises(Unavailable):
        await api.attach(OWNER_A, attach_request("cam-late", URL_A))

    assert [type(outcome) for outcome in outcomes] == [InvalidArgument] * RESOLVER_THREADS + [Unavailable]
    assert len(resolvers) == RESOLVER_THREADS
    for thread in resolvers:
        thread.join(5.0)
    assert not any(thread.is_alive() for thread in resolvers)
