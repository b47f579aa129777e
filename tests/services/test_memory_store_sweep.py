"""The memory store forgets expired sessions by itself, without a call that reads them (issue 8, item 7)."""

from __future__ import annotations

import asyncio
import time

import pytest

from siamstream_services.store import memory as memory_module
from siamstream_services.store.memory import MemorySessionStore
from siamstream_services.store.record import SessionRecord

TTL_S = 10.0
SWEEP_INTERVAL_S = 0.01
# Real seconds a sweep may take to show; the sweeps run every 10 ms.
SWEEP_BOUND_S = 2.0
OWNER_LIMIT = 100


class FakeClock:
    """The store's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(session_id: str, owner: str = "owner") -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        owner=owner,
        tracker="siamrpn_alex",
        package_id="package",
        options_json="{}",
        state_json="{}",
        embedding=b"\0" * 4,
        embedding_dtype="float32",
        embedding_shape=(1,),
        created_at=0.0,
        updated_at=0.0,
    )


async def held_after_sweeps(store: MemorySessionStore, expected: int) -> int:
    """How many sessions the store holds once it holds `expected`, or after SWEEP_BOUND_S."""
    deadline = time.monotonic() + SWEEP_BOUND_S
    while len(store) != expected and time.monotonic() < deadline:
        await asyncio.sleep(SWEEP_INTERVAL_S)
    return len(store)


async def test_expired_sessions_are_dropped_without_being_read_and_written_ones_kept() -> None:
    clock = FakeClock()
    store = MemorySessionStore(TTL_S, clock=clock, sweep_interval_s=SWEEP_INTERVAL_S)
    try:
        for index in range(3):
            await store.create(record(f"s-{index}"), owner_limit=OWNER_LIMIT)
        clock.now += TTL_S / 2
        assert await store.touch("s-0")  # the oldest session, written again: it outlives the others
        clock.now += TTL_S / 2 + 1

        assert await held_after_sweeps(store, 1) == 1
        assert await store.get("s-0") is not None
        clock.now += TTL_S
        assert await held_after_sweeps(store, 0) == 0
    finally:
        await store.aclose()


async def test_a_mass_expiry_is_swept_in_bounded_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hold of the lock drops one batch, then lets the other calls in: a caller running between
    two batches finds 8 -> 5 -> 2 -> 0 sessions held."""
    monkeypatch.setattr(memory_module, "SWEEP_BATCH", 3)
    clock = FakeClock()
    store = MemorySessionStore(TTL_S, clock=clock, sweep_interval_s=SWEEP_INTERVAL_S)
    try:
        for index in range(8):
            await store.create(record(f"s-{index}"), owner_limit=OWNER_LIMIT)
        clock.now += TTL_S
        seen = [len(store)]
        deadline = time.monotonic() + SWEEP_BOUND_S
        while seen[-1] and time.monotonic() < deadline:
            await asyncio.sleep(0)  # runs between any two batches of the sweeper
            if len(store) != seen[-1]:
                seen.append(len(store))

        assert seen == [8, 5, 2, 0]
    finally:
        await store.aclose()


async def test_create_drops_one_batch_of_expired_sessions_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    """A create after a mass expiry drops one sweep batch under the lock, not the whole backlog; the
    expired sessions it leaves never count against their owner's limit."""
    monkeypatch.setattr(memory_module, "SWEEP_BATCH", 3)
    clock = FakeClock()
    store = MemorySessionStore(TTL_S, clock=clock, sweep_interval_s=3600.0)  # no sweep in this test
    try:
        for index in range(6):  # the soonest to expire: the batch takes three of these
            await store.create(record(f"other-{index}", owner="other"), owner_limit=OWNER_LIMIT)
        for index in range(2):
            await store.create(record(f"s-{index}"), owner_limit=2)
        clock.now += TTL_S

        await store.create(record("s-new"), owner_limit=2)

        assert len(store) == 3 + 1  # three of the other owner's expired sessions left, and s-new
        assert [r.session_id for r in (await store.list("owner", page_size=10)).records] == ["s-new"]
    finally:
        await store.aclose()
