"""SessionManager without gRPC: concurrent writers, lost races, unreachable store and backend."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from siamstream_services.inference.backend import (
    BackendUnavailable,
    InferenceBackend,
    InferenceError,
    Stage,
    Tensors,
)
from siamstream_services.inference.embedded import EmbeddedBackend
from siamstream_services.session import sessions
from siamstream_services.session.catalog import Catalog, load_catalog
from siamstream_services.session.errors import Aborted, FailedPrecondition, ServiceError, Unavailable
from siamstream_services.session.frames import EncodedImage
from siamstream_services.session.metrics import ServiceMetrics
from siamstream_services.session.options import TrackOptions
from siamstream_services.session.sessions import FrameInput, SessionManager
from siamstream_services.settings import ServiceSettings
from siamstream_services.store import MemorySessionStore, SessionRecord, StoreUnavailable
from tests.services.session_fixtures import (
    INIT_BOX,
    TRACKER,
    encode,
    export_test_package,
    moving_target_frames,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

OWNER = "owner-1"
SETTINGS = ServiceSettings(metrics_port=0)


@dataclass
class Rig:
    catalog: Catalog
    backend: EmbeddedBackend
    frames: list[bytes]

    def manager(self, store, backend=None) -> SessionManager:
        return SessionManager(store, backend or self.backend, self.catalog.trackers, SETTINGS)


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
        (a for a in answers if not isinstance(a, Exception)), key=lambda a: a.result.frame_index
    )
    assert all(isinstance(a, FailedPrecondition) for a in answers if isinstance(a, Exception))
    accepted_numbers = [a.client_frame_number for a in accepted]
    # Applied one after another: frame indexes 1..n, client numbers strictly increasing, 6 always wins.
    assert [a.result.frame_index for a in accepted] == list(range(1, len(accepted) + 1))
    assert accepted_numbers == sorted(accepted_numbers) and accepted_numbers[-1] == 6
    record = await store.get(session_id)
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
    assert record.version == 1 and record.last_client_frame == 0


class DownStore(MemorySessionStore):
    async def get(self, session_id: str) -> SessionRecord | None:
        raise StoreUnavailable("connection refused")


class HungStore(MemorySessionStore):
    async def get(self, session_id: str) -> SessionRecord | None:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


@pytest.mark.parametrize("store_class", [DownStore, HungStore])
async def test_unreachable_store_is_unavailable_quickly(
    rig: Rig, store_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "STORE_TIMEOUT_S", 0.2)
    manager = rig.manager(store_class(60.0))
    session_id = await start(manager, rig)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(Unavailable, match="session store unavailable"):
        await manager.push(OWNER, session_id, frame(rig, 1))
    assert loop.time() - began < 2.0


class DownBackend(InferenceBackend):
    """A backend whose model server cannot be reached."""

    async def run_stage(
        self, tracker: str, stage: Stage, inputs: Tensors, *, search_features: bool = False
    ) -> Tensors:
        raise BackendUnavailable("model server unreachable")

    async def ready(self) -> bool:
        return False

    async def close(self) -> None:
        return None


async def test_unreachable_backend_is_unavailable_and_session_unchanged(rig: Rig) -> None:
    store = MemorySessionStore(60.0)
    session_id = await start(rig.manager(store), rig)
    down = rig.manager(store, DownBackend())
    with pytest.raises(Unavailable, match="inference backend unavailable"):
        await down.start(OWNER, TRACKER, frame(rig, 0), INIT_BOX, TrackOptions())
    with pytest.raises(Unavailable, match="inference backend unavailable"):
        await down.push(OWNER, session_id, frame(rig, 1, 1))
    assert (await store.get(session_id)).version == 1


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
    assert (await store.get(session_id)).version == 1
