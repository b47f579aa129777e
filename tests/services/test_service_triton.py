"""The session service on a REAL tritonserver (and a real redis-server): exact boxes, Triton crashes.

The model repository is the CPU test form of the real siamrpn_alex package (seeded weights), written by
the `siamstream triton-repository` command and served by nvidia-pytriton's tritonserver on free loopback
ports. One server serves the whole module; the crash test, last in the file, kills and restarts it on
the same ports. Sessions live in the session-wide redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import tritonclient.grpc as tritonclient
import tritonclient.grpc.aio as tritonaio
from tritonclient.utils import InferenceServerException

from siamstream.cli.main import build_parser
from siamstream_services.inference.triton_repository import search_model_name
from siamstream_services.inference.triton_server import TritonServer
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.redis_store import RedisSessionStore
from siamstream_services.testing.ports import free_port
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
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
    png_frame,
    status_of,
    wait_serving,
)
from tests.services.triton_fixtures import make_triton_server, triton_missing_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(triton_missing_reason() is not None, reason=str(triton_missing_reason())),
]

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
CODE = grpc.StatusCode
FRAME_COUNT = 5
# A crashed model server refuses connections at once: a push must not wait out the 5 s inference bound.
UNAVAILABLE_BOUND_S = 3.0
HEALTH_BOUND_S = ServiceSettings.model_fields["health_interval_s"].default + 3.0
SERVE_START_TIMEOUT_S = 60.0
SERVE_STOP_TIMEOUT_S = 15.0
STATS_LAG_S = 2.0
# Longer than tritonclient's usual 1 s request bound, well within the service's inference bound (5 s).
FREEZE_S = 1.5


@pytest.fixture(scope="module")
def repository(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CPU test repository, written by `siamstream triton-repository` (batch 4: a short warm-up)."""
    out = tmp_path_factory.mktemp("repository")
    argv = ["triton-repository", "--package", str(package_dir / TRACKER), "--out", str(out)]
    args = build_parser().parse_args([*argv, "--form", "cpu-test", "--max-batch", "4"])
    assert args.run(args) == 0
    return out


@pytest.fixture(scope="module")
def triton(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    server = make_triton_server(repository, tmp_path_factory.mktemp("triton"))
    server.start()
    yield server
    server.stop()
    assert not list(Path("/dev/shm").glob(f"{server.shm_region_prefix}*"))


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_target_frames(FRAME_COUNT)


@pytest.fixture(scope="module")
def expected(package_dir: Path, frames: list[np.ndarray]):
    return offline_results(package_dir, frames)


@pytest_asyncio.fixture(loop_scope="module")
async def replica(
    package_dir: Path, triton: TritonServer, redis_server: RedisServer
) -> AsyncIterator[Replica]:
    async with serving_replica(
        package_dir, store_url=redis_server.url, inference_backend=f"triton://{triton.grpc_url}"
    ) as running:
        yield running


def search_count(triton: TritonServer, at_least: int = 0) -> int:
    """Inferences the search model has run since the server started.

    Triton updates its statistics just after answering, so this reads again (for up to STATS_LAG_S)
    until the count reaches `at_least`.
    """
    client = tritonclient.InferenceServerClient(triton.grpc_url)
    deadline = time.monotonic() + STATS_LAG_S
    try:
        while True:
            stats = client.get_inference_statistics(search_model_name(TRACKER))
            count = stats.model_stats[0].inference_count
            if count >= at_least or time.monotonic() > deadline:
                return count
            time.sleep(0.05)
    finally:
        client.close()


@IN_MODULE_LOOP
async def test_triton_backend_gives_the_offline_boxes(
    replica: Replica, triton: TritonServer, frames: list[np.ndarray], expected
) -> None:
    searches = search_count(triton)
    started = await replica.start(frames[0])
    results = [started.result]
    for number, frame in enumerate(frames[1:], start=1):
        results.append(await replica.push(started.session_id, frame, number))

    assert_offline_results(results, expected)
    searched = search_count(triton, at_least=searches + FRAME_COUNT - 1) - searches
    assert searched == FRAME_COUNT - 1  # every search ran in Triton


def test_serve_command_runs_on_redis_and_triton(
    package_dir: Path,
    triton: TritonServer,
    redis_server: RedisServer,
    frames: list[np.ndarray],
    expected,
    tmp_path: Path,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "SIAMSTREAM_PACKAGE_DIR": str(package_dir),
        "SIAMSTREAM_LISTEN_ADDRESS": address,
        "SIAMSTREAM_METRICS_PORT": "0",
        "SIAMSTREAM_DRAIN_GRACE_S": "2",
        "SIAMSTREAM_API_KEYS": f'["{API_KEY_A}"]',
        "SIAMSTREAM_STORE_URL": redis_server.url,
        "SIAMSTREAM_INFERENCE_BACKEND": f"triton://{triton.grpc_url}",
    }
    searches = search_count(triton)
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "siamstream.cli", "serve"], env=env, stdout=output, stderr=output
        )
        try:
            wait_serving(address, process, SERVE_START_TIMEOUT_S, log.read_text)
            with grpc.insecure_channel(address) as channel:
                stub = pb_grpc.TrackingServiceStub(channel)
                start = pb.StartTrackRequest(
                    tracker=TRACKER, frame=png_frame(frames[0], 0), box=box_message(INIT_BOX)
                )
                session_id = stub.StartTrack(start, metadata=KEY, timeout=30).session_id
                push = pb.PushFrameRequest(session_id=session_id, frame=png_frame(frames[1], 1))
                result = stub.PushFrame(push, metadata=KEY, timeout=30).result
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=SERVE_STOP_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=SERVE_STOP_TIMEOUT_S)
    assert code == 0, log.read_text()[-3000:]
    assert_offline_results([result], expected[1:2])
    assert search_count(triton, at_least=searches + 1) - searches == 1  # the search ran in Triton
    record = asyncio.run(_read_record(redis_server.url, session_id))
    assert (
        record is not None and record.version == 2 and record.last_client_frame == 1
    )  # the state is in Redis


async def _read_record(url: str, session_id: str):
    store = RedisSessionStore.from_url(url, 60.0)
    try:
        return await store.get(session_id)
    finally:
        await store.aclose()


@IN_MODULE_LOOP
async def test_a_slow_but_live_triton_is_waited_for(
    replica: Replica, triton: TritonServer, frames: list[np.ndarray], expected
) -> None:
    """A model server that answers within the service's inference bound is not UNAVAILABLE."""
    started = await replica.start(frames[0])
    assert triton.pid is not None
    os.kill(triton.pid, signal.SIGSTOP)  # the server stalls for FREEZE_S, as on an overloaded host
    asyncio.get_running_loop().call_later(FREEZE_S, os.kill, triton.pid, signal.SIGCONT)
    try:
        began = time.monotonic()
        result = await replica.push(started.session_id, frames[1], 1)
        waited = time.monotonic() - began
    finally:
        os.kill(triton.pid, signal.SIGCONT)
    assert waited >= FREEZE_S
    assert_offline_results([started.result, result], expected[:2])


async def poll_through_outage(url: str) -> None:
    """Ask `url` for readiness every 0.2 s until cancelled, as other clients of a model server do.

    gRPC shares one subchannel per address among a process's channels; this keeps it alive, so its
    reconnect backoff grows through an outage as it would under steady traffic.
    """
    client = tritonaio.InferenceServerClient(url)
    try:
        while True:
            with contextlib.suppress(InferenceServerException):
                await client.is_server_ready(client_timeout=1.0)
            await asyncio.sleep(0.2)
    finally:
        await client.close()


@IN_MODULE_LOOP
async def test_triton_crash_is_unavailable_then_recovers_on_restart(
    replica: Replica, triton: TritonServer, frames: list[np.ndarray], expected
) -> None:
    """Kills the module's server: keep this test last in the file."""
    await replica.wait_health(SERVING, HEALTH_BOUND_S)
    started = await replica.start(frames[0])
    session_id = started.session_id
    results = [started.result, await replica.push(session_id, frames[1], 1)]
    before = await replica.get(session_id)

    keeper = asyncio.ensure_future(poll_through_outage(triton.grpc_url))
    triton.kill()
    began = time.monotonic()
    code, details = await status_of(replica.push(session_id, frames[2], 2))
    assert time.monotonic() - began < UNAVAILABLE_BOUND_S
    assert (code, "inference backend unavailable" in details) == (CODE.UNAVAILABLE, True), details
    assert await replica.wait_health(NOT_SERVING, HEALTH_BOUND_S) < HEALTH_BOUND_S
    assert await replica.get(session_id) == before  # the refused frame changed nothing

    await asyncio.to_thread(triton.start)  # the same ports; the service is not restarted
    # At once: no reconnect backoff left over from the outage may keep refusing a server that is back.
    try:
        results.append(await replica.push(session_id, frames[2], 2))
    finally:
        keeper.cancel()
    await replica.wait_health(SERVING, HEALTH_BOUND_S)
    for number in range(3, FRAME_COUNT):
        results.append(await replica.push(session_id, frames[number], number))
    assert_offline_results(results, expected)
