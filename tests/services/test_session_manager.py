"""SessionManager without gRPC: concurrent writers, lost races, unreachable store and backend."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
import pytest
import pytest_asyncio

from siamstream_services.core.catalog import Catalog, load_catalog
from siamstream_services.core.errors import (
    Aborted,
    FailedPrecondition,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from siamstream_services.core.frames import EncodedImage
from siamstream_services.core.metrics import ServiceMetrics
from siamstream_services.core.options import TrackOptions
from siamstream_services.core.sessions import FrameInput, SessionManager
from siamstream_services.inference.backend import (
    BackendUnavailable,
    InferenceBackend,
    InferenceError,
    Stage,
    Tensors,
)
from siamstream_services.inference.embedded import EmbeddedBackend
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.errors import StoreUnavailable
from siamstream_services.store.memory import MemorySessionStore
from siamstream_services.store.record import SessionRecord
from tests.services.session_fixtures import (
    INIT_BOX,
    TRACKER,
    encode,
    export_test_package,
    moving_target_frames,
    stored_record,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

OWNER = "owner-1"
SETTINGS = ServiceSettings(metrics_port=0)


@dataclass
class Rig:
    catalog: Catalog
    backend: EmbeddedBackend
    frames: list[bytes]

    def manager(self, store, backend=None, settings: ServiceSettings = SETTINGS) -> SessionManager:
        return SessionManager(store, backend or self.backend, self.catalog.trackers, settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory):
    package_dir: Path = tmp_path_factory.mktemp("packages")
    export_test_package(package_dir)
    catalog = load_catalog(package_dir, [])
    backend = EmbeddedBackend(catalog.packages, max_wait_ms=2.0)
    yield Rig(catalog, backend, [encode(frame) for frame in moving_target_frames(4)])
    await backend.close()


def frame(rig: Rig, index: int, number: int | None = None) -> FrameInput:
    return FrameInput(EncodedImage(rig.frames[index % len(rig.frames)]), number)


async def start(manager: SessionManager, rig: Rig) -> str:
    outcome = await manager.start(OWNER, TRACKER, frame(rig, 0, 0), INIT_BOX, TrackOptions())
    return outcome.session_id


async def test_concurrent_numbered_pushes_apply_in_order_or_are_stale(rig: Rig) -> None:
    store = MemorySessionStore(60.0)
    manager = rig.manager(store)
    session_id = await start(manager, rig)
    numbers = [1, 2, 3, 4, 5, 6]
    random.Random(3).shuffle(numbers)

    answers = await asyncio.gather(
        *(manager.push(OWNER, session_id, frame(rig, n, n)) for n in numbers), return_exceptions=True
    )

    accepted = sorted(
        (a for a in answers if not isinstance(a, BaseException)), key=lambda a: a.result.frame_index
    )
    assert all(isinstance(a, FailedPrecondition) for a in answers if isinstance(a, BaseException))
    accepted_numbers = [cast(int, a.client_frame_number) for a in accepted]  # every push carried a number
    # Applied one after another: frame indexes 1..n, client numbers strictly increasing, 6 always wins.
    assert [a.result.frame_index for a in accepted] == list(range(1, len(accepted) + 1))
    assert accepted_numbers == sorted(accepted_numbers) and accepted_numbers[-1] == 6
    record = await store.get(session_id)
    assert record is not None
    assert record.version == 1 + len(accepted) and record.last_client_frame == 6


class CountingStore(MemorySessionStore):
    """Counts the writes that lost the race."""

    lost = 0

    async def compare_and_set(self, record: SessionRecord, expected_version: int) -> bool:
        written = await super().compare_and_set(record, expected_version)
        self.lost += not written
        return written


async def test_two_replicas_never_lose_an_update(rig: Rig) -> None:
    store = CountingStore(60.0)
    replicas = [rig.manager(store), rig.manager(store)]  # separate per-session locks, one store
    session_id = await start(replicas[0], rig)
    pushes = 6

    answers = await asyncio.gather(
        *(replicas[i % 2].push(OWNER, session_id, frame(rig, i + 1)) for i in range(pushes))
    )

    assert sorted(a.result.frame_index for a in answers) == list(range(1, pushes + 1))
    record = await store.get(session_id)
    assert record is not None
    assert record.version == 1 + pushes
    assert (await replicas[1].get(OWNER, session_id)).frame_count == 1 + pushes
    assert store.lost > 0  # the replicas did race, and the losers redid their frame on the new state


class LosingStore(MemorySessionStore):
    """A store where another writer always wins: every compare_and_set finds a newer version."""

    async def compare_and_set(self, record: SessionRecord, expected_version: int) -> bool:
        return False


async def test_writer_that_keeps_losing_gets_aborted_and_changes_nothing(rig: Rig) -> None:
    store = LosingStore(60.0)
    manager = rig.manager(store)
    session_id = await start(manager, rig)
    with pytest.raises(Aborted, match="retry"):
        await manager.push(OWNER, session_id, frame(rig, 1, 1))
    record = await store.get(session_id)
    assert record is not None
    assert record.version == 1 and record.last_client_frame == 0


STORE_HOST = "10.20.30.40:6379"
MODEL_SERVER_HOST = "10.20.30.41:8001"


class DownStore(MemorySessionStore):
    async def get(self, session_id: str) -> SessionRecord | None:
        raise StoreUnavailable(
            f"Redis is unavailable: Error 111 connecting to {STORE_HOST}. Connection refused."
        )


class HungStore(MemorySessionStore):
    async def get(self, session_id: str) -> SessionRecord | None:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("store_class", "message"),
    [
        (DownStore, "session store unavailable"),
        (HungStore, "session store unavailable: no answer within 0.2 s"),
    ],
)
async def test_unreachable_store_is_unavailable_quickly(
    rig: Rig,
    store_class: type,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """UNAVAILABLE says what is unavailable, and why when it timed out, but never where the store is: the
    address goes to the log."""
    manager = rig.manager(store_class(60.0), settings=ServiceSettings(metrics_port=0, store_timeout_s=0.2))
    session_id = await start(manager, rig)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(Unavailable) as refused:
        await manager.push(OWNER, session_id, frame(rig, 1))
    assert loop.time() - began < 2.0
    assert refused.value.message == message
    if store_class is DownStore:
        assert STORE_HOST in caplog.text


class DownBackend(InferenceBackend):
    """A backend whose model server cannot be reached."""

    async def run_stage(
        self, tracker: str, stage: Stage, inputs: Tensors, *, search_features: bool = False
    ) -> Tensors:
        raise BackendUnavailable(f"Triton at {MODEL_SERVER_HOST}: failed to connect to all addresses")

    async def ready(self) -> bool:
        return False

    async def close(self) -> None:
        return None


class HungBackend(DownBackend):
    """A backend whose model server accepts calls and never answers."""

    async def run_stage(
        self, tracker: str, stage: Stage, inputs: Tensors, *, search_features: bool = False
    ) -> Tensors:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("backend_class", "message"),
    [
        (DownBackend, "inference backend unavailable"),
        (HungBackend, "inference backend unavailable: no answer within 0.2 s"),
    ],
)
async def test_unreachable_backend_is_unavailable_and_session_unchanged(
    rig: Rig,
    backend_class: type,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemorySessionStore(60.0)
    session_id = await start(rig.manager(store), rig)
    down = rig.manager(store, backend_class(), ServiceSettings(metrics_port=0, inference_timeout_s=0.2))
    with pytest.raises(Unavailable) as refused_start:
        await down.start(OWNER, TRACKER, frame(rig, 0), INIT_BOX, TrackOptions())
    with pytest.raises(Unavailable) as refused_push:
        await down.push(OWNER, session_id, frame(rig, 1, 1))
    assert [refused_start.value.message, refused_push.value.message] == [message, message]
    assert (await stored_record(store, session_id)).version == 1
    if backend_class is DownBackend:
        assert MODEL_SERVER_HOST in caplog.text  # the operator still learns where it failed


class BrokenModelBackend(DownBackend):
    """A backend that answers, but whose model fails on every call (a plain InferenceError)."""

    async def run_stage(
        self, tracker: str, stage: Stage, inputs: Tensors, *, search_features: bool = False
    ) -> Tensors:
        raise InferenceError("output 'cls' has shape [1, 7]")

    async def ready(self) -> bool:
        return True


async def test_model_error_is_internal_counted_and_session_unchanged(rig: Rig) -> None:
    store = MemorySessionStore(60.0)
    session_id = await start(rig.manager(store), rig)
    metrics = ServiceMetrics()
    broken = SessionManager(store, BrokenModelBackend(), rig.catalog.trackers, SETTINGS, metrics=metrics)
    for call in (
        broken.start(OWNER, TRACKER, frame(rig, 0), INIT_BOX, TrackOptions()),
        broken.push(OWNER, session_id, frame(rig, 1, 1)),
    ):
        with pytest.raises(ServiceError, match="inference failed") as refused:
            await call
        assert refused.value.code is grpc.StatusCode.INTERNAL
    counted = {"tracker": TRACKER, "code": "INTERNAL"}
    assert metrics.registry.get_sample_value("siamstream_frames_total", counted) == 2
    assert (await stored_record(store, session_id)).version == 1


class StaleCountStore(MemorySessionStore):
    """A store whose advisory count always finds room, as when another replica's start lands meanwhile."""

    async def has_room(self, owner: str, *, owner_limit: int) -> bool:
        return True


async def test_an_owner_at_its_limit_is_refused_before_any_decode_crop_or_inference(rig: Rig) -> None:
    """The advisory count runs first: over the limit, a frame that would not even decode, on a backend
    that would fail, is RESOURCE_EXHAUSTED."""
    store = MemorySessionStore(60.0)
    settings = ServiceSettings(metrics_port=0, max_sessions_per_owner=1)
    await start(SessionManager(store, rig.backend, rig.catalog.trackers, settings), rig)
    down = SessionManager(store, DownBackend(), rig.catalog.trackers, settings)
    corrupt = FrameInput(EncodedImage(b"\xff\xd8 not a frame"))

    with pytest.raises(ResourceExhausted, match="has 1 live sessions"):
        await down.start(OWNER, TRACKER, corrupt, INIT_BOX, TrackOptions())


async def test_a_stale_advisory_count_is_caught_by_the_stores_atomic_check(rig: Rig) -> None:
    store = StaleCountStore(60.0)
    settings = ServiceSettings(metrics_port=0, max_sessions_per_owner=1)
    manager = SessionManager(store, rig.backend, rig.catalog.trackers, settings)
    await start(manager, rig)

    with pytest.raises(ResourceExhausted, match="has 1 live sessions"):
        await start(manager, rig)
    assert len((await store.list(OWNER, page_size=10)).records) == 1


async def test_the_start_frames_number_is_stale_not_a_retry(rig: Rig) -> None:
    """Only a pushed frame is replayed: the start frame's number again cannot be told from a new frame."""
    store = MemorySessionStore(60.0)
    manager = rig.manager(store)
    session_id = await start(manager, rig)  # frame number 0

    with pytest.raises(FailedPrecondition, match="stale frame 0, session is at 0"):
        await manager.push(OWNER, session_id, frame(rig, 0, 0))
    record = await store.get(session_id)
    assert record is not None
    assert record.version == 1 and (await manager.get(OWNER, session_id)).frame_count == 1


async def test_the_last_pushed_number_replays_its_stored_result_whatever_the_image(rig: Rig) -> None:
    """A retry is known by its number alone: another image under it gets the stored result, tracks
    nothing, and counts as a replay rather than a tracked frame."""
    store = MemorySessionStore(60.0)
    metrics = ServiceMetrics()
    manager = SessionManager(store, rig.backend, rig.catalog.trackers, SETTINGS, metrics=metrics)
    session_id = await start(manager, rig)
    first = await manager.push(OWNER, session_id, frame(rig, 1, 1))
    version = (await stored_record(store, session_id)).version

    replayed = await manager.push(OWNER, session_id, frame(rig, 3, 1))

    assert replayed.result == first.result and replayed.client_frame_number == 1
    assert (await stored_record(store, session_id)).version == version
    tracked = {"tracker": TRACKER, "code": "OK"}
    assert metrics.registry.get_sample_value("siamstream_frames_total", tracked) == 2  # start, frame 1
    assert metrics.registry.get_sample_value("siamstream_frames_replayed_total", {"tracker": TRACKER}) == 1
