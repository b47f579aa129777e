"""Per-session state storage: the `SessionStore` interface, its record, the in-process and Redis stores."""

from __future__ import annotations

from siamstream_services.store.errors import (
    InvalidPageToken,
    OwnerLimitReached,
    SessionExistsError,
    StoreUnavailable,
)
from siamstream_services.store.memory import MemorySessionStore
from siamstream_services.store.protocol import SessionStore
from siamstream_services.store.record import MAX_PAGE_SIZE, SessionPage, SessionRecord, owner_key_id
from siamstream_services.store.redis_store import RedisSessionStore

__all__ = [
    "MAX_PAGE_SIZE",
    "InvalidPageToken",
    "MemorySessionStore",
    "OwnerLimitReached",
    "RedisSessionStore",
    "SessionExistsError",
    "SessionPage",
    "SessionRecord",
    "SessionStore",
    "StoreUnavailable",
    "open_store",
    "owner_key_id",
]


def open_store(url: str, idle_ttl_s: float) -> SessionStore:
    """The store named by a settings `store_url`: `memory://`, or `redis://HOST:PORT/DB` / `rediss://...`."""
    if url == "memory://":
        return MemorySessionStore(idle_ttl_s)
    if url.startswith(("redis://", "rediss://")):
        return RedisSessionStore.from_url(url, idle_ttl_s)
    raise ValueError(f"unknown store URL {url!r}: use memory:// or redis://HOST:PORT/DB")
