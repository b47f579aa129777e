"""Session stores: one contract suite run on the in-process store and on a real redis-server, then the
Redis store's behaviour across server restarts and outages."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pytest

from siamstream_services.settings import ServiceSettings
from siamstream_services.store.errors import (
    InvalidPageToken,
    OwnerLimitReached,
    SessionExistsError,
    StoreUnavailable,
)
from siamstream_services.store.memory import MemorySessionStore
from siamstream_services.store.protocol import SessionStore
from siamstream_services.store.record import SessionPage, SessionRecord, owner_key_id
from siamstream_services.store.redis_store import RedisSessionStore
from siamstream_services.wiring import open_session_store

if TYPE_CHECKING:
    from siamstream_services.testing.redis_server import RedisServer

OWNER = owner_key_id("test-key-0123456789")
OTHER_OWNER = owner_key_id("other-key-0123456789")
# Above the sessions any test here gives one owner, but for the limit's own tests.
OWNER_LIMIT = 100
# A float32 embedding whose bytes include 0x00, 0xff, a NaN payload, -0.0 and infinities.
EMBEDDING_VALUES = (0.0, -0.0, 1.5, float("inf"), float("-inf"), 3.4028234663852886e38, 1e-45)
EMBEDDING = struct.pack("<7f", *EMBEDDING_VALUES) + b"\x01\x00\xc0\x7f"


def make_record(session_id: str = "s-1", owner: str = OWNER, **changes: Any) -> SessionRecord:
    """A session as the service would create it: 8 float32 embedding values, state at frame 0."""
    record = SessionRecord(
        session_id=session_id,
        owner=owner,
        tracker="siamrpn_r50",
        package_id="siamrpn_r50@sha256:0123",
        options_json='{"penalty_k": 0.05}',
        state_json=json.dumps({"frame_index": 0, "counter": 0, "label": "véhicule ✓"}),
        embedding=EMBEDDING,
        embedding_dtype="float32",
        embedding_shape=(1, 8),
        created_at=1_700_000_000.123456,
        updated_at=1_700_000_000.123456,
        last_client_frame=None,
    )
    return replace(record, **changes)


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """How the contract suite makes a store and lets time pass for it."""

    name: str
    make: Callable[[float], SessionStore]
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    stores: list[SessionStore] = []
    if request.param == "memory":
        clock = FakeClock()

        def make(idle_ttl_s: float) -> SessionStore:
            return MemorySessionStore(idle_ttl_s, clock=clock)

        async def advance(seconds: float) -> None:
            clock.now += seconds
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"test:{uuid.uuid4().hex}:"

        def make(idle_ttl_s: float) -> SessionStore:
            return RedisSessionStore.from_url(server.url, idle_ttl_s, key_prefix=prefix)

        async def advance(seconds: float) -> None:
            await asyncio.sleep(seconds)

    def make_tracked(idle_ttl_s: float) -> SessionStore:
        store = make(idle_ttl_s)
        stores.append(store)
        return store

    yield Backend(request.param, make_tracked, advance)
    for store in stores:
        await store.aclose()


@pytest.fixture
def store(backend: Backend) -> SessionStore:
    return backend.make(60.0)


# ---- contract suite: both stores --------------------------------------------------------------------


async def test_create_then_get_returns_the_record_as_version_1(store: SessionStore) -> None:
    record = make_record(last_client_frame=2**64 - 1)

    created = await store.create(record, owner_limit=OWNER_LIMIT)

    assert created == replace(record, version=1)
    assert await store.get("s-1") == created


async def test_create_rejects_an_existing_id(store: SessionStore) -> None:
    await store.create(make_record(), owner_limit=OWNER_LIMIT)

    with pytest.raises(SessionExistsError):
        await store.create(make_record(tracker="siamban_r50"), owner_limit=OWNER_LIMIT)
    record = await store.get("s-1")
    assert record is not None and record.tracker == "siamrpn_r50"


async def test_get_of_an_unknown_session_is_none(store: SessionStore) -> None:
    assert await store.get("nope") is None


async def test_embedding_bytes_round_trip_exactly(store: SessionStore) -> None:
    every_byte = bytes(range(256)) * 3
    await store.create(make_record("f32"), owner_limit=OWNER_LIMIT)
    await store.create(
        make_record("u8", embedding=every_byte, embedding_dtype="uint8", embedding_shape=(3, 256)),
        owner_limit=OWNER_LIMIT,
    )

    record = await store.get("f32")
    assert record is not None and record.embedding == EMBEDDING
    stored = await store.get("u8")
    assert stored is not None
    assert (stored.embedding, stored.embedding_dtype, stored.embedding_shape) == (
        every_byte,
        "uint8",
        (3, 256),
    )


async def test_compare_and_set_writes_only_at_the_expected_version(store: SessionStore) -> None:
    created = await store.create(make_record(), owner_limit=OWNER_LIMIT)
    update = replace(
        created,
        state_json='{"frame_index": 1}',
        embedding=bytes(32),
        updated_at=1_700_000_001.5,
        last_client_frame=7,
    )

    assert await store.compare_and_set(update, expected_version=1)
    assert await store.get("s-1") == replace(update, version=2)
    assert not await store.compare_and_set(replace(update, state_json='{"stale": true}'), expected_version=1)
    assert await store.get("s-1") == replace(update, version=2)


async def test_compare_and_set_keeps_the_fields_fixed_at_create(store: SessionStore) -> None:
    created = await store.create(make_record(), owner_limit=OWNER_LIMIT)
    changed = replace(created, tracker="siamfc", package_id="other", created_at=1.0, last_client_frame=3)

    assert await store.compare_and_set(changed, expected_version=1)

    assert await store.get("s-1") == replace(created, last_client_frame=3, version=2)


async def test_compare_and_set_of_a_missing_session_is_false(store: SessionStore) -> None:
    assert not await store.compare_and_set(make_record("ghost"), expected_version=1)
    assert await store.get("ghost") is None


async def test_compare_and_set_by_another_owner_is_refused(store: SessionStore) -> None:
    await store.create(make_record(), owner_limit=OWNER_LIMIT)

    with pytest.raises(ValueError, match="another owner"):
        await store.compare_and_set(make_record(owner=OTHER_OWNER), expected_version=1)
    record = await store.get("s-1")
    assert record is not None and record.version == 1


async def test_delete_removes_the_session(store: SessionStore) -> None:
    await store.create(make_record(), owner_limit=OWNER_LIMIT)

    assert await store.delete("s-1")
    assert await store.get("s-1") is None
    assert not await store.delete("s-1")
    assert (await store.list(OWNER, page_size=10)).records == ()


async def test_list_pages_through_one_owners_sessions_in_id_order(store: SessionStore) -> None:
    ids = [f"s-{index}" for index in (3, 0, 4, 1, 2)]
    for session_id in ids:
        await store.create(make_record(session_id), owner_limit=OWNER_LIMIT)
    await store.create(make_record("s-other", owner=OTHER_OWNER), owner_limit=OWNER_LIMIT)

    pages = []
    token = ""
    for _ in range(len(ids) + 1):
        page = await store.list(OWNER, page_size=2, page_token=token)
        pages.append([record.session_id for record in page.records])
        token = page.next_page_token
        if not token:
            break

    assert pages == [["s-0", "s-1"], ["s-2", "s-3"], ["s-4"]]
    other = await store.list(OTHER_OWNER, page_size=10)
    assert ([record.session_id for record in other.records], other.next_page_token) == (["s-other"], "")
    assert (await store.list(OWNER, page_size=5)).next_page_token == ""


async def test_list_rejects_bad_page_sizes_and_tokens(store: SessionStore) -> None:
    with pytest.raises(ValueError, match="page_size"):
        await store.list(OWNER, page_size=0)
    with pytest.raises(ValueError, match="page_size"):
        await store.list(OWNER, page_size=101)
    with pytest.raises(InvalidPageToken):
        await store.list(OWNER, page_size=10, page_token="not base64!")


async def test_list_refuses_page_tokens_it_did_not_make(store: SessionStore) -> None:
    """Garbage that happens to decode (issue 8: it was listed from wherever it pointed) is refused, and the
    refusal does not quote the token."""
    for session_id in ("s-0", "s-1", "s-2"):
        await store.create(make_record(session_id), owner_limit=OWNER_LIMIT)
    token = (await store.list(OWNER, page_size=1)).next_page_token
    assert [record.session_id for record in (await store.list(OWNER, 1, token)).records] == ["s-1"]

    encoded, digest = token.split(".")
    altered = f"{encoded}.{'0' if digest[0] != '0' else '1'}{digest[1:]}"
    for garbage in ("AAAA", "czEtMA==", encoded, token[:-1], altered, f"{encoded}=.{digest}", "é"):
        with pytest.raises(InvalidPageToken) as refused:
            await store.list(OWNER, page_size=1, page_token=garbage)
        assert garbage not in str(refused.value)


async def test_sessions_expire_after_the_idle_ttl_unless_written_or_touched(backend: Backend) -> None:
    store = backend.make(1.0)
    created = await store.create(make_record(), owner_limit=OWNER_LIMIT)

    await backend.advance(0.5)
    assert await store.compare_and_set(replace(created, state_json="{}"), expected_version=1)
    await backend.advance(0.5)  # 1.0 s after create, 0.5 s after the write
    assert await store.touch("s-1")
    await backend.advance(0.5)  # 1.0 s after the write, 0.5 s after the touch
    assert await store.get("s-1") is not None

    await backend.advance(1.1)

    assert await store.get("s-1") is None
    assert not await store.touch("s-1")
    assert not await store.compare_and_set(replace(created, state_json="{}"), expected_version=2)
    assert await store.list(OWNER, page_size=10) == SessionPage((), "")
    await store.create(make_record(), owner_limit=OWNER_LIMIT)  # the id is free again


async def test_concurrent_compare_and_set_loses_no_update(store: SessionStore) -> None:
    await store.create(make_record(), owner_limit=OWNER_LIMIT)
    conflicts = 0

    async def increment() -> None:
        nonlocal conflicts
        for _ in range(100):  # each round at least one writer wins, so 20 writers need at most 20 rounds
            current = await store.get("s-1")
            assert current is not None
            state = json.loads(current.state_json)
            state["counter"] += 1
            await asyncio.sleep(0)  # let the other writers read the same version
            if await store.compare_and_set(replace(current, state_json=json.dumps(state)), current.version):
                return
            conflicts += 1
        raise AssertionError("compare_and_set never succeeded")

    await asyncio.gather(*(increment() for _ in range(20)))

    final = await store.get("s-1")
    assert final is not None
    assert json.loads(final.state_json)["counter"] == 20
    assert final.version == 21
    assert conflicts > 0  # the writers really raced


async def test_create_refuses_an_owner_at_its_limit_and_counts_each_owner_apart(store: SessionStore) -> None:
    for session_id in ("s-1", "s-2", "s-3"):
        await store.create(make_record(session_id), owner_limit=3)

    with pytest.raises(OwnerLimitReached):
        await store.create(make_record("s-4"), owner_limit=3)
    assert await store.get("s-4") is None
    await store.create(make_record("s-other", owner=OTHER_OWNER), owner_limit=3)  # its own count
    assert await store.delete("s-2")
    await store.create(make_record("s-4"), owner_limit=3)  # a stopped session frees its place
    with pytest.raises(OwnerLimitReached):
        await store.create(make_record("s-5"), owner_limit=3)
    listed = await store.list(OWNER, page_size=10)
    assert [record.session_id for record in listed.records] == ["s-1", "s-3", "s-4"]


async def test_expired_sessions_do_not_count_against_the_limit(backend: Backend) -> None:
    store = backend.make(2.0)  # 0.8 s of slack on either side for Redis' real clock on a busy machine
    await store.create(make_record("s-1"), owner_limit=2)
    await store.create(make_record("s-2"), owner_limit=2)
    await backend.advance(1.2)
    assert await store.touch("s-1")  # keeps s-1 and the owner's index alive; s-2 is left to expire
    await backend.advance(1.2)

    await store.create(make_record("s-3"), owner_limit=2)

    with pytest.raises(OwnerLimitReached):
        await store.create(make_record("s-4"), owner_limit=2)
    listed = await store.list(OWNER, page_size=10)
    assert [record.session_id for record in listed.records] == ["s-1", "s-3"]


async def test_has_room_counts_the_owners_live_sessions_only(backend: Backend) -> None:
    store = backend.make(2.0)
    await store.create(make_record("s-1"), owner_limit=2)
    await store.create(make_record("s-2"), owner_limit=2)

    assert not await store.has_room(OWNER, owner_limit=2)
    assert await store.has_room(OWNER, owner_limit=3)
    assert await store.has_room(OTHER_OWNER, owner_limit=1)
    await backend.advance(2.5)  # both expire, their ids still in the owner's index
    assert await store.has_room(OWNER, owner_limit=2)
    assert await store.has_room(OWNER, owner_limit=1)


async def test_concurrent_creates_never_exceed_the_limit(store: SessionStore) -> None:
    async def create(index: int) -> bool:
        try:
            await store.create(make_record(f"s-{index:02d}"), owner_limit=5)
        except OwnerLimitReached:
            return False
        return True

    created = await asyncio.gather(*(create(index) for index in range(20)))

    assert sum(created) == 5
    assert len((await store.list(OWNER, page_size=100)).records) == 5


# ---- Redis across restarts and outages ---------------------------------------------------------------


async def test_the_settings_store_url_picks_the_store(redis_server: RedisServer) -> None:
    # A URL of another scheme is refused by the settings themselves (tests/services/test_settings.py).
    from redis.asyncio import Redis

    memory = open_session_store(ServiceSettings(store_url="memory://", session_idle_ttl_s=60))
    remote = open_session_store(ServiceSettings(store_url=redis_server.url, session_idle_ttl_s=90))
    client = Redis.from_url(redis_server.url)
    record = make_record(f"wiring-{uuid.uuid4().hex}")
    try:
        assert isinstance(memory, MemorySessionStore)
        assert isinstance(remote, RedisSessionStore)
        await remote.create(record, owner_limit=OWNER_LIMIT)
        # The session is in the Redis of the URL, with the settings' idle TTL.
        assert 60_000 < await client.pttl(f"siamstream:v1:session:{record.session_id}") <= 90_000
    finally:
        await remote.delete(record.session_id)
        await client.aclose()
        await memory.aclose()
        await remote.aclose()


async def test_a_redis_client_that_decodes_responses_is_refused_by_name(redis_server: RedisServer) -> None:
    # Such a client fails on the embedding bytes; on the owner field, which it can decode, the store says why.
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url, decode_responses=True)
    store = RedisSessionStore(client, 60.0, key_prefix=f"decoding-{uuid.uuid4().hex}:")
    try:
        await store.create(make_record(), owner_limit=OWNER_LIMIT)
        with pytest.raises(TypeError, match="decode_responses=False"):
            await store.touch("s-1")
    finally:
        await store.aclose()


async def test_redis_restart_without_persistence_loses_records_and_the_store_reconnects(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    store = RedisSessionStore.from_url(server.url, 60.0)
    try:
        await store.create(make_record(), owner_limit=OWNER_LIMIT)

        server.restart()

        assert await store.get("s-1") is None
        # The scripts are gone from the restarted server: EVALSHA falls back to loading them.
        created = await store.create(make_record(), owner_limit=OWNER_LIMIT)
        assert await store.compare_and_set(replace(created, state_json="{}"), expected_version=1)
        record = await store.get("s-1")
        assert record is not None and record.version == 2
    finally:
        await store.aclose()


async def test_redis_with_an_append_only_file_keeps_records_across_a_restart(
    redis_server_aof: RedisServer,
) -> None:
    store = RedisSessionStore.from_url(redis_server_aof.url, 60.0, key_prefix=f"test:{uuid.uuid4().hex}:")
    try:
        created = await store.create(make_record(), owner_limit=OWNER_LIMIT)
        assert await store.compare_and_set(replace(created, last_client_frame=41), expected_version=1)

        redis_server_aof.restart()

        assert await store.get("s-1") == replace(created, last_client_frame=41, version=2)
        assert [record.session_id for record in (await store.list(OWNER, page_size=10)).records] == ["s-1"]
    finally:
        await store.aclose()


@pytest.mark.parametrize("operation", ["get", "create", "compare_and_set", "list"])
async def test_a_stopped_redis_raises_store_unavailable_within_3_s(
    make_redis_server: Callable[[], RedisServer], operation: str
) -> None:
    server = make_redis_server()
    store = RedisSessionStore.from_url(server.url, 60.0)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "get": lambda: store.get("s-1"),
        "create": lambda: store.create(make_record("s-2"), owner_limit=OWNER_LIMIT),
        "compare_and_set": lambda: store.compare_and_set(make_record(), expected_version=1),
        "list": lambda: store.list(OWNER, page_size=10),
    }
    try:
        await store.create(make_record(), owner_limit=OWNER_LIMIT)
        server.stop()

        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await calls[operation]()

        assert time.monotonic() - started < 3.0
    finally:
        await store.aclose()


async def test_a_hung_redis_raises_store_unavailable_within_3_s(
    make_redis_server: Callable[[], RedisServer],
) -> None:
    server = make_redis_server()
    store = RedisSessionStore.from_url(server.url, 60.0)
    try:
        created = await store.create(make_record(), owner_limit=OWNER_LIMIT)
        server.freeze()

        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.compare_and_set(replace(created, state_json="{}"), expected_version=1)

        assert time.monotonic() - started < 3.0
    finally:
        await store.aclose()
