"""Calls that end early: dropped by their clients or out of time.

Issue 8: a client that opened WatchTrack, read a few results and cancelled killed the service with SIGSEGV
within a few cancels. grpc aio abandons a generator handler whose call is cancelled; the garbage collector
closed it later, after grpc had released the call, and the interceptor's `finally` then read the call
(`peer()`). Here every streaming RPC (Track, health Watch, WatchTrack) of a real `siamstream serve` process
is cancelled hundreds of times at different points, and unary calls run out of tiny deadlines; the process
must outlive it all and still answer SERVING. WatchTrack needs a Redis store and an attached camera: no
ingest worker runs, the test publishes the target's results into the camera directory itself. In process:
health watchers that stay while others leave, and how dropped and expired calls are counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import CameraDirectory, camera_key
from siamstream_services.core.metrics import ServiceMetrics
from siamstream_services.grpc_api.interceptors import ObservabilityInterceptor
from siamstream_services.grpc_api.refused_sends import GRPC_LOGGER, quiet_refused_sends
from siamstream_services.grpc_api.server import SERVICE_NAME
from siamstream_services.store.record import owner_key_id
from siamstream_services.testing.ports import free_port
from siamstream_services.testing.processes import terminate
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.session_fixtures import (
    API_KEY_A,
    INIT_BOX,
    TRACKER,
    auth,
    box_message,
    moving_target_frames,
    png_frame,
    running_service,
    status_of,
    wait_serving,
)

pytestmark = pytest.mark.timeout(120)

KEY = auth(API_KEY_A)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# Each RPC is dropped this many times; the crash took 2 to 16 WatchTrack cancels.
CANCELS = 200
# Calls in flight at once per RPC, so that teardowns overlap as under real load.
CONCURRENCY = 4
# Bounds one call of the test's own (a read, a write): the server answers in well under it.
CALL_TIMEOUT_S = 10.0
PUBLISH_INTERVAL_S = 0.005


@dataclass
class ServeProcess:
    """`siamstream serve` on a loopback port over Redis, its log, and the Redis it stores in, with the key
    prefix of its cameras."""

    process: subprocess.Popen[bytes]
    address: str
    log: Path
    store_url: str
    key_prefix: str

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def service(
    package_dir: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    key_prefix = f"test-cancels-{uuid.uuid4().hex[:8]}:"
    # A database of its own: the sessions the dropped calls leave behind are no other test's concern.
    store_url = f"redis://127.0.0.1:{redis_server.port}/9"
    env = {
        **os.environ,
        "PYTHONFAULTHANDLER": "1",  # a crash leaves its stack in the log
        "SIAMSTREAM_PACKAGE_DIR": str(package_dir),
        "SIAMSTREAM_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}",
        "SIAMSTREAM_METRICS_PORT": "0",
        "SIAMSTREAM_DRAIN_GRACE_S": "1",
        # Readiness under a storm of calls is not what these tests check: room for a slow probe.
        "SIAMSTREAM_HEALTH_PROBE_TIMEOUT_S": "5",
        "SIAMSTREAM_API_KEYS": f'["{API_KEY_A}"]',
        "SIAMSTREAM_STORE_URL": store_url,
        "SIAMSTREAM_INGEST_KEY_PREFIX": key_prefix,
    }
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "siamstream.cli", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
    running = ServeProcess(process, env["SIAMSTREAM_LISTEN_ADDRESS"], log, store_url, key_prefix)
    try:
        wait_serving(running.address, process, START_TIMEOUT_S, running.log_tail)
        yield running
    finally:
        terminate(process, STOP_TIMEOUT_S)


async def _drop_track(stub: pb_grpc.TrackingServiceStub, start: pb.TrackRequest, index: int) -> None:
    """Open Track and cancel it: before any message, while the start is tracked, or once it is answered."""
    call = stub.Track(metadata=KEY, timeout=CALL_TIMEOUT_S)
    stage = index % 3
    if stage >= 1:
        await call.write(start)
    if stage == 2:
        assert (await call.read()).session_id
    else:
        await asyncio.sleep(0.001 * (index % 7))
    call.cancel()


async def _drop_health_watch(health: health_pb2_grpc.HealthStub, index: int) -> None:
    call = health.Watch(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
    if index % 2:
        assert (await call.read()).status == SERVING
    call.cancel()


async def _drop_watch_track(
    stub: pb_grpc.TrackingServiceStub, request: pb.WatchTrackRequest, index: int
) -> None:
    """Open WatchTrack, read 0 to 5 results, cancel."""
    call = stub.WatchTrack(request, metadata=KEY, timeout=CALL_TIMEOUT_S)
    for _ in range(index % 6):
        assert (await call.read()).target_id == request.target_id
    call.cancel()


async def _expire_unary(stub: pb_grpc.TrackingServiceStub, frame: pb.Frame, index: int) -> None:
    """A unary call whose deadline (0.5 to 128 ms) runs out before it is served, or while it is (the frame
    of a push is decoded before its session is looked up)."""
    deadline_s = 0.0005 * 2 ** (index % 9)
    absent = "0" * 32
    calls = (
        lambda: stub.ListTracks(pb.ListTracksRequest(), metadata=KEY, timeout=deadline_s),
        lambda: stub.GetTrack(pb.GetTrackRequest(session_id=absent), metadata=KEY, timeout=deadline_s),
        lambda: stub.PushFrame(
            pb.PushFrameRequest(session_id=absent, frame=frame), metadata=KEY, timeout=deadline_s
        ),
    )
    try:
        await calls[index % len(calls)]()
    except aio.AioRpcError as error:
        assert error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.NOT_FOUND), error


async def _repeat(drop: Callable[[int], Awaitable[None]]) -> None:
    """`drop(index)` for every index below CANCELS, CONCURRENCY at a time."""

    async def lane(first: int) -> None:
        for index in range(first, CANCELS, CONCURRENCY):
            await drop(index)

    await asyncio.gather(*(lane(first) for first in range(CONCURRENCY)))


async def _publish(directory: CameraDirectory, camera_id: str, target_id: str, stop: asyncio.Event) -> None:
    """Stand in for the ingest worker: one result of the target every PUBLISH_INTERVAL_S until `stop`."""
    key = camera_key(owner_key_id(API_KEY_A), camera_id)
    number = 0
    while not stop.is_set():
        result = pb.CameraTrackResult(
            camera_id=camera_id,
            target_id=target_id,
            result=pb.TrackResult(box=box_message(INIT_BOX), client_frame_number=number),
        )
        await directory.publish(key, target_id, result.SerializeToString(), INIT_BOX)
        number += 1
        await asyncio.sleep(PUBLISH_INTERVAL_S)


async def test_the_service_outlives_hundreds_of_dropped_calls(service: ServeProcess) -> None:
    frame = png_frame(moving_target_frames(1)[0], 0)
    start = pb.StartTrackRequest(tracker=TRACKER, frame=frame, box=box_message(INIT_BOX))
    directory = CameraDirectory.from_url(service.store_url, IngestSettings(key_prefix=service.key_prefix))
    stop_publishing = asyncio.Event()
    async with aio.insecure_channel(service.address) as channel:
        stub = pb_grpc.TrackingServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        attach = pb.AttachCameraRequest(
            camera_id="lobby", url="rtsp://127.0.0.1:9/none", box=box_message(INIT_BOX), tracker=TRACKER
        )
        attached = await stub.AttachCamera(attach, metadata=KEY, timeout=CALL_TIMEOUT_S)
        watch = pb.WatchTrackRequest(camera_id=attached.camera_id, target_id=attached.target_id)
        publisher = asyncio.create_task(
            _publish(directory, attached.camera_id, attached.target_id, stop_publishing)
        )
        drops = {
            "Track": _repeat(lambda i: _drop_track(stub, pb.TrackRequest(start=start), i)),
            "Health.Watch": _repeat(lambda i: _drop_health_watch(health, i)),
            "WatchTrack": _repeat(lambda i: _drop_watch_track(stub, watch, i)),
            "unary": _repeat(lambda i: _expire_unary(stub, frame, i)),
        }
        try:
            outcomes = await asyncio.gather(*drops.values(), return_exceptions=True)
        finally:
            stop_publishing.set()
            await publisher
            await directory.aclose()

    exit_code = service.process.poll()
    assert exit_code is None, f"the service died with exit code {exit_code}: {service.log_tail()}"
    assert {rpc: outcome for rpc, outcome in zip(drops, outcomes, strict=True) if outcome is not None} == {}
    async with aio.insecure_channel(service.address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S
        )
        assert answer.status == SERVING
        # And it still tracks: a whole Track stream, start to half-close, is answered.
        call = pb_grpc.TrackingServiceStub(channel).Track(metadata=KEY, timeout=CALL_TIMEOUT_S)
        await call.write(pb.TrackRequest(start=start))
        await call.done_writing()
        assert [response.session_id != "" async for response in call] == [True]
    # Nor did any call's teardown fail: a scope exited by the garbage collector, outside the call's task,
    # left "Task exception was never retrieved" tracebacks even where it did not crash.
    assert "Traceback" not in service.log.read_text(errors="replace")


async def test_a_cancelled_health_watch_leaves_the_other_watchers_informed(package_dir: Path) -> None:
    """grpcio-health-checking's servicer dropped a service's condition when any one of its watchers left:
    the others then waited on it forever, and never saw the drain's NOT_SERVING."""
    request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
    async with running_service(package_dir) as service:
        health = health_pb2_grpc.HealthStub(service.channel)
        staying = health.Watch(request, timeout=CALL_TIMEOUT_S)
        assert (await staying.read()).status == SERVING
        for _ in range(3):
            leaving = health.Watch(request, timeout=CALL_TIMEOUT_S)
            assert (await leaving.read()).status == SERVING
            leaving.cancel()
        await asyncio.sleep(0.2)  # the server ends the cancelled watches meanwhile
        drain = asyncio.ensure_future(service.server.drain(grace_s=CALL_TIMEOUT_S))
        assert (await asyncio.wait_for(staying.read(), CALL_TIMEOUT_S)).status == NOT_SERVING
        staying.cancel()
        await asyncio.wait_for(drain, CALL_TIMEOUT_S)


async def test_dropped_and_expired_streams_are_counted_by_how_they_ended(package_dir: Path) -> None:
    """The status of a torn-down call is no longer read from its context: a stream the client cancels is
    counted CANCELLED, one whose deadline passed DEADLINE_EXCEEDED."""
    request = health_pb2.HealthCheckRequest()
    async with running_service(package_dir) as service:
        health = health_pb2_grpc.HealthStub(service.channel)
        cancelled = health.Watch(request, timeout=CALL_TIMEOUT_S)
        assert (await cancelled.read()).status == SERVING
        cancelled.cancel()
        expiring = health.Watch(request, timeout=2.0)  # room for its first answer on a loaded machine
        assert (await expiring.read()).status == SERVING
        code, _ = await status_of(expiring.read())
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED

        def count(code: str) -> float | None:
            labels = {"method": "Watch", "code": code}
            return service.server.metrics.registry.get_sample_value("siamstream_rpc_requests_total", labels)

        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline and None in (count("CANCELLED"), count("DEADLINE_EXCEEDED")):
            await asyncio.sleep(0.05)  # the server learns of the end after the client
        assert [count("CANCELLED"), count("DEADLINE_EXCEEDED")] == [1.0, 1.0]


# Answers over a 1 KB send limit, which grpc refuses to send.
async def _oversized_unary(request: bytes, context: aio.ServicerContext) -> bytes:
    return b"x" * 4096


async def _oversized_stream(request: bytes, context: aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"x" * 4096


async def test_a_write_grpc_refuses_is_counted_as_over_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A write grpc refuses (here a response over the send limit, with no client gone) is told apart from
    nothing in the context: the call counts as CANCELLED like a dropped one, and the log says why."""
    metrics = ServiceMetrics()

    handler = grpc.method_handlers_generic_handler(
        "test.Stream", {"Oversized": grpc.unary_stream_rpc_method_handler(_oversized_stream)}
    )
    server = aio.server(
        interceptors=[ObservabilityInterceptor(metrics)], options=[("grpc.max_send_message_length", 1024)]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    caplog.set_level(logging.INFO, logger="siamstream_services.grpc_api.rpc")
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            multicallable: aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
                "/test.Stream/Oversized"
            )
            call = multicallable(b"", timeout=CALL_TIMEOUT_S)
            code, _ = await status_of(call.read())
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED  # what the client gets from grpc

        def counted() -> float | None:
            labels = {"method": "Oversized", "code": "CANCELLED"}
            return metrics.registry.get_sample_value("siamstream_rpc_requests_total", labels)

        deadline = time.monotonic() + CALL_TIMEOUT_S
        while counted() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the server's side of the call ends after the client's
        assert counted() == 1.0
        assert "rpc method=/test.Stream/Oversized: grpc refused a write, the call is over" in caplog.text
    finally:
        await server.stop(None)


@pytest.fixture
def unfiltered_grpc_log() -> Iterator[None]:
    """grpc's logger without the filter an earlier test's service put on it, restored afterwards."""
    logger = logging.getLogger(GRPC_LOGGER)
    kept = list(logger.filters)
    for kept_filter in kept:
        logger.removeFilter(kept_filter)
    yield
    for added in list(logger.filters):
        logger.removeFilter(added)
    for kept_filter in kept:
        logger.addFilter(kept_filter)


@pytest.mark.parametrize("kind", ["unary", "stream"])
@pytest.mark.usefixtures("unfiltered_grpc_log")
async def test_a_send_grpc_refuses_is_logged_as_an_info_line(
    caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """grpc logged a send it refused on a call that was over (here a message over the send limit; in CI, a
    client's cancel racing grpc's note of it, for an abort) as an ERROR with its traceback, also for what
    it sends after the servicer returned, out of the interceptors' reach. The service's filter logs an
    INFO line instead."""
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
        "unary": grpc.unary_unary_rpc_method_handler(_oversized_unary),
        "stream": grpc.unary_stream_rpc_method_handler(_oversized_stream),
    }
    quiet_refused_sends()
    server = aio.server(options=[("grpc.max_send_message_length", 1024)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Refused", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    caplog.set_level(logging.INFO, logger="siamstream_services.grpc_api.rpc")
    line = f"rpc method=/test.Refused/{kind}: grpc could not send on the call, already over"
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            if kind == "unary":
                unary: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/test.Refused/unary")
                code, _ = await status_of(unary(b"", timeout=CALL_TIMEOUT_S))
            else:
                stream: aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
                    "/test.Refused/stream"
                )
                code, _ = await status_of(stream(b"", timeout=CALL_TIMEOUT_S).read())
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while line not in caplog.text and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the server's side of the call ends after the client's
        assert line in caplog.text
    finally:
        await server.stop(None)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
