"""In-process session store: the embedded default, with the same semantics as the Redis store.

Only one process can use it, so it suits a single replica and tests. Time comes from an injectable
monotonic clock so that tests can move it instead of sleeping.

Expired sessions are forgotten actively: from its first `create` on, the store sweeps them every
`sweep_interval_s`, so the memory of sessions nobody reads again (their embeddings) is freed within an
interval of their expiry. The entries are kept in expiry order (every write moves its session to the
end), so a sweep reads only the expired entries and the first live one, and drops at most
`SWEEP_BATCH` of them per hold of the lock, so that a mass expiry never stalls the other calls; `create`
drops one such batch too. The owner limit counts live sessions only: an owner index at the limit is
rid of its expired sessions before a create is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from siamstream_services.store.errors import OwnerLimitReached, SessionExistsError
from siamstream_services.store.record import (
    IMMUTABLE_FIELDS,
    SessionPage,
    SessionRecord,
    check_page_size,
    decode_page_token,
    encode_page_token,
)

# Entries dropped per hold of the lock by a sweep; thousands take about a millisecond.
SWEEP_BATCH = 1000


@dataclass(slots=True)
class _Entry:
    record: SessionRecord
    expires_at: float


class MemorySessionStore:
    """A `SessionStore` held in a dict, guarded by an asyncio lock."""

    def __init__(
        self,
        idle_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval_s: float = 1.0,
    ) -> None:
        """`idle_ttl_s`: seconds without a write or touch after which a session expires; `clock`: seconds;
        `sweep_interval_s`: real seconds between two sweeps of the expired sessions."""
        if idle_ttl_s <= 0:
            raise ValueError(f"idle_ttl_s must be positive, got {idle_ttl_s}")
        self._idle_ttl_s = idle_ttl_s
        self._clock = clock
        self._sweep_interval_s = sweep_interval_s
        self._sweeper: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # soonest expiry first
        self._owner_index: dict[str, set[str]] = {}

    def __len__(self) -> int:
        """Sessions held in memory, expired ones not yet swept included."""
        return len(self._entries)

    async def create(self, record: SessionRecord, *, owner_limit: int) -> SessionRecord:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_periodically(), name="memory-store-sweeper")
        async with self._lock:
            self._drop_expired(SWEEP_BATCH)
            if self._live(record.session_id) is not None:
                raise SessionExistsError(f"session {record.session_id!r} already exists")
            if self._owner_full(record.owner, owner_limit):
                raise OwnerLimitReached(f"owner {record.owner} has {owner_limit} live sessions")
            stored = replace(record, version=1)
            self._entries[record.session_id] = _Entry(stored, self._clock() + self._idle_ttl_s)
            self._owner_index.setdefault(record.owner, set()).add(record.session_id)
            return stored

    async def has_room(self, owner: str, *, owner_limit: int) -> bool:
        async with self._lock:
            return not self._owner_full(owner, owner_limit)

    async def get(self, session_id: str) -> SessionRecord | None:
        async with self._lock:
            entry = self._live(session_id)
            return None if entry is None else entry.record

    async def compare_and_set(self, record: SessionRecord, expected_version: int) -> bool:
        async with self._lock:
            entry = self._live(record.session_id)
            if entry is None:
                return False
            if entry.record.owner != record.owner:
                raise ValueError(f"session {record.session_id!r} belongs to another owner")
            if entry.record.version != expected_version:
                return False
            kept = {name: getattr(entry.record, name) for name in IMMUTABLE_FIELDS}
            entry.record = replace(record, **kept, version=expected_version + 1)
            self._refresh(entry)
            return True

    async def delete(self, session_id: str) -> bool:
        async with self._lock:
            entry = self._live(session_id)
            if entry is None:
                return False
            self._remove(entry.record)
            return True

    async def list(self, owner: str, page_size: int, page_token: str = "") -> SessionPage:
        check_page_size(page_size)
        after = decode_page_token(page_token)
        async with self._lock:
            live = (self._live(session_id) for session_id in sorted(self._owner_index.get(owner, ())))
            records = [
                entry.record
                for entry in live
                if entry is not None and (after is None or entry.record.session_id > after)
            ]
        page = tuple(records[:page_size])
        more = len(records) > page_size
        return SessionPage(page, encode_page_token(page[-1].session_id) if more else "")

    async def touch(self, session_id: str) -> bool:
        async with self._lock:
            entry = self._live(session_id)
            if entry is None:
                return False
            self._refresh(entry)
            return True

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        async with self._lock:
            self._entries.clear()
            self._owner_index.clear()

    def _live(self, session_id: str) -> _Entry | None:
        """The session's entry, dropping it first if it has expired. Call with the lock held."""
        entry = self._entries.get(session_id)
        if entry is not None and self._clock() >= entry.expires_at:
            self._remove(entry.record)
            return None
        return entry

    def _owner_full(self, owner: str, owner_limit: int) -> bool:
        """Whether `owner` has `owner_limit` live sessions. An index that full first forgets its expired
        sessions (the bounded drops leave some behind), reading at most the owner's entries. Call with the
        lock held."""
        if len(self._owner_index.get(owner, ())) < owner_limit:
            return False
        for session_id in list(self._owner_index[owner]):
            self._live(session_id)
        return len(self._owner_index.get(owner, ())) >= owner_limit

    def _refresh(self, entry: _Entry) -> None:
        """Restart the entry's idle TTL, keeping the entries in expiry order. Call with the lock held."""
        entry.expires_at = self._clock() + self._idle_ttl_s
        self._entries.move_to_end(entry.record.session_id)

    def _drop_expired(self, limit: int) -> int:
        """Forget the expired sessions, at most `limit` of them; returns how many. Call with the lock held."""
        now = self._clock()
        dropped = 0
        while self._entries and dropped < limit:
            entry = next(iter(self._entries.values()))
            if now < entry.expires_at:
                break
            self._remove(entry.record)
            dropped += 1
        return dropped

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval_s)
            while True:  # a full batch may leave more: go on, letting other calls in between batches
                async with self._lock:
                    if self._drop_expired(SWEEP_BATCH) < SWEEP_BATCH:
                        break
                await asyncio.sleep(0)

    def _remove(self, record: SessionRecord) -> None:
        del self._entries[record.session_id]
        owned = self._owner_index[record.owner]
        owned.discard(record.session_id)
        if not owned:
            del self._owner_index[record.owner]
