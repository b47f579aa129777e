"""In-process session store: the embedded default, with the same semantics as the Redis store.

Only one process can use it, so it suits a single replica and tests. Time comes from an injectable
monotonic clock so that tests can move it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from siamstream_services.store.errors import SessionExistsError
from siamstream_services.store.record import (
    IMMUTABLE_FIELDS,
    SessionPage,
    SessionRecord,
    check_page_size,
    decode_page_token,
    encode_page_token,
)


@dataclass(slots=True)
class _Entry:
    record: SessionRecord
    expires_at: float


class MemorySessionStore:
    """A `SessionStore` held in a dict, guarded by an asyncio lock."""

    def __init__(self, idle_ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        """`idle_ttl_s`: seconds without a write or touch after which a session expires; `clock`: seconds."""
        if idle_ttl_s <= 0:
            raise ValueError(f"idle_ttl_s must be positive, got {idle_ttl_s}")
        self._idle_ttl_s = idle_ttl_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._entries: dict[str, _Entry] = {}
        self._owner_index: dict[str, set[str]] = {}

    async def create(self, record: SessionRecord) -> SessionRecord:
        async with self._lock:
            self._drop_expired()
            if self._live(record.session_id) is not None:
                raise SessionExistsError(f"session {record.session_id!r} already exists")
            stored = replace(record, version=1)
            self._entries[record.session_id] = _Entry(stored, self._clock() + self._idle_ttl_s)
            self._owner_index.setdefault(record.owner, set()).add(record.session_id)
            return stored

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
            entry.expires_at = self._clock() + self._idle_ttl_s
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
            entry.expires_at = self._clock() + self._idle_ttl_s
            return True

    async def aclose(self) -> None:
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

    def _drop_expired(self) -> None:
        """Forget every expired session, so that sessions nobody reads again do not pile up."""
        now = self._clock()
        for entry in [entry for entry in self._entries.values() if now >= entry.expires_at]:
            self._remove(entry.record)

    def _remove(self, record: SessionRecord) -> None:
        del self._entries[record.session_id]
        owned = self._owner_index[record.owner]
        owned.discard(record.session_id)
        if not owned:
            del self._owner_index[record.owner]
