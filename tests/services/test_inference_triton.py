"""Triton backend against a REAL tritonserver (nvidia-pytriton's binary, python-backend CPU form).

The server runs the CPU test form of the generated repository on free loopback ports and is stopped by
pid. Skipped only when the binary is not installed (scripts/install_triton.sh installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from siamstream.package import TrackerPackage
from siamstream_services.inference.backend import BackendUnavailable, SearchOutputs, UnknownTracker
from siamstream_services.inference.embedded import EmbeddedBackend
from siamstream_services.inference.triton import TritonBackend, TritonFailure, classify
from siamstream_services.inference.triton_repository import (
    RepositoryForm,
    search_model_name,
    template_model_name,
    write_model_repository,
)
from siamstream_services.inference.triton_server import TritonServer
from siamstream_services.settings import TritonBatchingSettings
from tests.services.triton_fixtures import (
    make_triton_server,
    sample_inputs,
    triton_missing_reason,
    write_test_package,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(triton_missing_reason() is not None, reason=str(triton_missing_reason())),
]

# A long queue delay makes the batching assertion deterministic on a loaded 2-core machine.
BATCHING = TritonBatchingSettings(
    max_batch_size=8, preferred_batch_sizes=(4, 8), max_queue_delay_microseconds=20_000
)
# The same package under another name, whose lone requests wait 3 s in Triton's queue for company (two
# run at once): a request that outlives the client's timeout on a live server, as on an overloaded one.
QUEUED = "queued"
QUEUED_BATCHING = TritonBatchingSettings(
    max_batch_size=8, preferred_batch_sizes=(2,), max_queue_delay_microseconds=3_000_000
)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> TrackerPackage:
    return write_test_package(tmp_path_factory.mktemp("package") / "tiny")


@pytest.fixture(scope="module")
def repository(package: TrackerPackage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repository")
    write_model_repository([package], root, form=RepositoryForm.CPU_TEST, batching=BATCHING)
    queued = write_test_package(tmp_path_factory.mktemp("package") / QUEUED, tracker=QUEUED)
    write_model_repository([queued], root, form=RepositoryForm.CPU_TEST, batching=QUEUED_BATCHING)
    return root


def start_server(repository: Path, work_dir: Path) -> Iterator[TritonServer]:
    server = make_triton_server(repository, work_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert not list(Path("/dev/shm").glob(f"{server.shm_region_prefix}*"))


@pytest.fixture(scope="module")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    yield from start_server(repository, tmp_path_factory.mktemp("triton"))


async def embedded_outputs(package: TrackerPackage, rows: int, seed: int):
    backend = EmbeddedBackend([package], max_wait_ms=0.0)
    x = sample_inputs(rows, seed)
    embedding = await backend.template("tiny", x["crop_z"], x["box_prior"])
    outputs = await backend.search("tiny", x["template_embedding"], x["crop_x"])
    await backend.close()
    return x, embedding, outputs


def assert_outputs_equal(actual: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == np.float32 and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shared_memory", [False, True], ids=["grpc", "shm"])
async def test_triton_equals_embedded(
    server: TritonServer, package: TrackerPackage, shared_memory: bool
) -> None:
    x, embedding, outputs = await embedded_outputs(package, rows=3, seed=5)
    backend = TritonBackend(server.grpc_url, shared_memory=shared_memory)
    try:
        assert await backend.ready()
        assert_outputs_equal((await backend.template("tiny", x["crop_z"], x["box_prior"]),), (embedding,))
        for _ in range(2):  # the second call reuses the registered regions
            assert_outputs_equal(await backend.search("tiny", x["template_embedding"], x["crop_x"]), outputs)
    finally:
        await backend.close()


async def test_shared_memory_regions_are_reused_and_released(server: TritonServer) -> None:
    backend = TritonBackend(server.grpc_url, shared_memory=True)
    x = sample_inputs(rows=1, seed=0)
    for _ in range(3):
        await backend.search("tiny", x["template_embedding"], x["crop_x"])
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        regions = await client.get_system_shared_memory_status(as_json=True)
        assert len(regions.get("regions", {})) == 1
        await backend.close()
        assert not (await client.get_system_shared_memory_status(as_json=True)).get("regions")
    finally:
        await client.close()
    assert not list(Path("/dev/shm").glob("siamstream_*"))


@contextlib.asynccontextmanager
async def shm_backend(
    server: TritonServer, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[tuple[TritonBackend, grpcclient.InferenceServerClient]]:
    """A shared-memory backend of `server` and a client to inspect the server; both are closed on exit,
    which leaves no region of this process in /dev/shm."""
    backend = TritonBackend(server.grpc_url, shared_memory=True, clock=clock)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        yield backend, client
    finally:
        await backend.close()
        await client.close()
    assert not list(Path("/dev/shm").glob("siamstream_*"))


async def test_region_of_a_cancelled_call_is_never_reused(server: TritonServer) -> None:
    """Triton may still write the outputs of a call cancelled (or timed out) on the client side: its region
    must not serve the next call, and it is unregistered from the server."""
    x = sample_inputs(rows=1, seed=0)
    async with shm_backend(server) as (backend, client):
        await backend.search("tiny", x["template_embedding"], x["crop_x"])
        (first,) = (await client.get_system_shared_memory_status(as_json=True))["regions"]
        call = asyncio.create_task(backend.search("tiny", x["template_embedding"], x["crop_x"]))
        await asyncio.sleep(0)  # the call runs up to its inference request, on the pooled region
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert not list(Path("/dev/shm").glob(first))
        await backend.search("tiny", x["template_embedding"], x["crop_x"])
        (second,) = (await client.get_system_shared_memory_status(as_json=True))["regions"]
        assert second != first


async def registered_regions(client: grpcclient.InferenceServerClient) -> set[str]:
    """The names of the system shared memory regions the server holds."""
    return set((await client.get_system_shared_memory_status(as_json=True)).get("regions", {}))


async def failed_requests(client: grpcclient.InferenceServerClient, model: str) -> int:
    """How many requests of `model` the server has failed (a request whose client gave up included)."""
    return (await client.get_inference_statistics(model)).model_stats[0].inference_stats.fail.count


async def until_dropped(client: grpcclient.InferenceServerClient, model: str, failed: int) -> None:
    """Wait until the server has failed more than `failed` requests of `model`: it has dropped a request
    whose client gave up, and with it the request's region."""
    async with asyncio.timeout(10.0):  # the queue delay, and room for a loaded machine
        while await failed_requests(client, model) == failed:
            await asyncio.sleep(0.1)


def queued_pair(backend: TritonBackend, x: dict[str, np.ndarray]) -> Awaitable[list[SearchOutputs]]:
    """Two searches of the QUEUED tracker at once: Triton runs them without waiting."""
    return asyncio.gather(*(backend.search(QUEUED, x["template_embedding"], x["crop_x"]) for _ in "ab"))


@contextlib.asynccontextmanager
async def timed_out_request(
    backend: TritonBackend, client: grpcclient.InferenceServerClient, x: dict[str, np.ndarray]
) -> AsyncIterator[None]:
    """A lone search of the QUEUED tracker times out; the body runs while Triton still holds it (and its
    region), the exit waits until Triton has dropped it."""
    model = search_model_name(QUEUED)
    failed = await failed_requests(client, model)
    with pytest.raises(BackendUnavailable, match="Deadline Exceeded"):
        await backend.search(QUEUED, x["template_embedding"], x["crop_x"])
    yield
    await until_dropped(client, model, failed)


async def test_backend_works_again_after_a_deadline_on_a_live_server(
    server: TritonServer, package: TrackerPackage
) -> None:
    """A request queued past the timeout leaves the server up, holding every shared-memory registration:
    the backend must serve again from its pooled regions (not fail to register them twice), and unregister
    the timed out request's region once the server lets go of it (it refuses while the request waits)."""
    x, _, expected = await embedded_outputs(package, rows=1, seed=3)
    async with shm_backend(server) as (backend, client):
        for answer in await queued_pair(backend, x):  # run at once: two regions, both registered
            assert_outputs_equal(answer, expected)
        async with timed_out_request(backend, client, x):
            # The other model serves meanwhile; the region of the request still queued cannot go yet.
            tiny = await backend.search("tiny", x["template_embedding"], x["crop_x"])
            assert_outputs_equal(tiny, expected)
            assert len(await registered_regions(client)) == 3
        for answer in await queued_pair(backend, x):
            assert_outputs_equal(answer, expected)
        # Two search regions of the queued model (the one left free and a new one) and the tiny one's.
        assert len(await registered_regions(client)) == 3
        await backend.close()
        assert not await registered_regions(client)


async def test_close_after_a_deadline_unregisters_every_region_the_server_lets_go(
    server: TritonServer,
) -> None:
    """Closing right after a timeout, with the channel dropped: the pooled region the server still holds
    is unregistered too; only the one of the request still queued is refused."""
    x = sample_inputs(rows=1, seed=4)
    async with shm_backend(server) as (backend, client):
        await queued_pair(backend, x)
        async with timed_out_request(backend, client, x):
            await backend.close()
            (in_use,) = await registered_regions(client)
        await client.unregister_system_shared_memory(in_use)  # let go of it now, for the tests after


async def test_close_unregisters_the_regions_of_calls_that_timed_out_together(
    server: TritonServer,
) -> None:
    """The first of two calls failing together drops the channel and forgets what it registered; the
    region of the second is the server's all the same, and close must unregister both."""
    x = sample_inputs(rows=1, seed=6)
    models = (template_model_name(QUEUED), search_model_name(QUEUED))
    async with shm_backend(server) as (backend, client):
        failed = [await failed_requests(client, model) for model in models]
        # Alone in its model's queue, each waits 3 s for company: both time out, on one region each.
        calls = await asyncio.gather(
            backend.template(QUEUED, x["crop_z"], x["box_prior"]),
            backend.search(QUEUED, x["template_embedding"], x["crop_x"]),
            return_exceptions=True,
        )
        assert [type(call) for call in calls] == [BackendUnavailable, BackendUnavailable]
        assert len(await registered_regions(client)) == 2
        for model, count in zip(models, failed, strict=True):
            await until_dropped(client, model, count)
        await backend.close()
        assert not await registered_regions(client)


async def test_a_region_still_in_use_is_asked_for_again_once_per_interval(server: TritonServer) -> None:
    """While a timed out request holds its region, the calls do not each spend a round trip asking for
    it: the next call after the timeout asks, the calls of the following second do not."""
    x = sample_inputs(rows=1, seed=7)
    now = 0.0
    async with shm_backend(server, clock=lambda: now) as (backend, client):
        async with timed_out_request(backend, client, x):
            await backend.search("tiny", x["template_embedding"], x["crop_x"])  # asks: still in use
        # Triton has let go of the region, but it is not asked for again within the interval.
        await backend.search("tiny", x["template_embedding"], x["crop_x"])
        assert len(await registered_regions(client)) == 2
        now += 1.0
        await backend.search("tiny", x["template_embedding"], x["crop_x"])
        assert len(await registered_regions(client)) == 1


async def test_dynamic_batching_answers_8_concurrent_requests(
    server: TritonServer, package: TrackerPackage
) -> None:
    calls = [sample_inputs(rows=1, seed=100 + i) for i in range(8)]
    embedded = EmbeddedBackend([package], max_wait_ms=0.0)
    expected = [await embedded.search("tiny", c["template_embedding"], c["crop_x"]) for c in calls]
    await embedded.close()

    backend = TritonBackend(server.grpc_url)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        before = (await client.get_inference_statistics("tiny_search")).model_stats[0]
        answers = await asyncio.gather(
            *(backend.search("tiny", c["template_embedding"], c["crop_x"]) for c in calls)
        )
        # Triton updates its statistics just after answering: read again, for a bounded time.
        deadline = time.monotonic() + 5.0
        while True:
            after = (await client.get_inference_statistics("tiny_search")).model_stats[0]
            if after.inference_count - before.inference_count >= 8 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    finally:
        await client.close()
        await backend.close()
    for answer, reference in zip(answers, expected, strict=True):
        assert_outputs_equal(answer, reference)
    assert after.inference_count - before.inference_count == 8
    assert after.execution_count - before.execution_count < 8  # requests were batched together


async def test_unknown_tracker(server: TritonServer) -> None:
    backend = TritonBackend(server.grpc_url)
    x = sample_inputs(rows=1, seed=0)
    try:
        with pytest.raises(UnknownTracker):
            await backend.search("nope", x["template_embedding"], x["crop_x"])
    finally:
        await backend.close()


async def test_dead_server_is_unavailable_fast_and_the_backend_recovers(
    repository: Path, package: TrackerPackage, tmp_path: Path
) -> None:
    x, _, expected = await embedded_outputs(package, rows=2, seed=9)
    for server in start_server(repository, tmp_path):
        backends = [TritonBackend(server.grpc_url, shared_memory=shm) for shm in (False, True)]
        try:
            for backend in backends:
                assert_outputs_equal(
                    await backend.search("tiny", x["template_embedding"], x["crop_x"]), expected
                )
            server.kill()
            assert not list(Path("/dev/shm").glob(f"{server.shm_region_prefix}*"))
            for backend in backends:
                started = time.monotonic()
                with pytest.raises(BackendUnavailable):
                    await backend.search("tiny", x["template_embedding"], x["crop_x"])
                assert time.monotonic() - started < 2.0
                assert not await backend.ready()
            server.start()  # same ports
            for backend in backends:
                assert await backend.ready()
                assert_outputs_equal(
                    await backend.search("tiny", x["template_embedding"], x["crop_x"]), expected
                )
            # A restart the backends never saw fail: the shm backend must register its regions again.
            server.stop()
            server.start()
            for backend in backends:
                assert_outputs_equal(
                    await backend.search("tiny", x["template_embedding"], x["crop_x"]), expected
                )
        finally:
            for backend in backends:
                await backend.close()


@pytest.mark.parametrize(
    ("status", "message", "failure"),
    [
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", TritonFailure.UNREACHABLE),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", TritonFailure.UNREACHABLE),
        ("StatusCode.CANCELLED", "Locally cancelled by application!", TritonFailure.UNREACHABLE),
        (
            "StatusCode.NOT_FOUND",
            "Request for unknown model: 'x_search' is not found",
            TritonFailure.UNKNOWN_MODEL,
        ),
        ("StatusCode.NOT_FOUND", "Unable to find shared memory region: 'r'", TritonFailure.UNKNOWN_REGION),
        (
            "StatusCode.INVALID_ARGUMENT",
            "Unable to find shared memory region: 'r'",
            TritonFailure.UNKNOWN_REGION,
        ),
        (
            "StatusCode.INTERNAL",
            "Cannot unregister shared memory region 'r', it is currently in use.",
            TritonFailure.REGION_IN_USE,
        ),
        (
            "StatusCode.ALREADY_EXISTS",
            "shared memory region 'r' already in manager",
            TritonFailure.ALREADY_REGISTERED,
        ),
        ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'INPUT__1'", TritonFailure.OTHER),
        (None, "the client's own refusal", TritonFailure.OTHER),
    ],
)
def test_triton_errors_are_classified_by_status_code(
    status: str | None, message: str, failure: TritonFailure
) -> None:
    """tritonclient raises a failed call's gRPC status as `str(grpc.StatusCode.X)`; only the two region
    failures, whose code tells nothing, are read from the message."""
    assert classify(InferenceServerException(msg=message, status=status)) is failure
