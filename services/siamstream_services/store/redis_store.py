"""Session store on Redis, shared by every replica of the session service.

Layout: one hash per session (`<prefix>session:<id>`: state fields and embedding bytes together) and one
sorted set per owner (`<prefix>owner:<owner>`: session ids, all scored 0 so they sort by id) for
listing. Every write is one Lua script, so a record is never half-written and the version check and the
write happen atomically. Both keys get the idle TTL on every write; the owner index therefore outlives
its sessions, and listing prunes the ids of sessions that have expired.

The owner's session limit is checked in the create script against the size of the owner index, so that
concurrent creates (from any replica) never exceed it. Expired ids only make that count too high, never
too low: a create that finds the index full prunes it of expired ids and tries once more before refusing.

Scripts run by EVALSHA and are reloaded when the server answers NOSCRIPT (after a restart), by
redis-py's `AsyncScript`. The keys of one script are declared, but a session and its owner index are
different keys, so this layout needs a standalone (or replicated, not clustered) Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Self

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from siamstream_services.store.errors import OwnerLimitReached, SessionExistsError, StoreUnavailable
from siamstream_services.store.record import (
    SessionPage,
    SessionRecord,
    check_page_size,
    decode_page_token,
    encode_page_token,
)
from siamstream_services.store.redis_codec import OWNER_FIELD, VERSION_FIELD, decode_record, encode_fields

# KEYS: session hash, owner index. ARGV: idle TTL ms, session id, owner limit, field/value pairs (version
# included). Returns 1 created, 0 id taken, -1 the owner index holds `owner limit` ids.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""

# KEYS: session hash, owner index. ARGV: idle TTL ms, expected version, new version, owner, version field
# name, owner field name, field/value pairs. Returns 1 written, 0 missing or other version, -1 other owner.
_COMPARE_AND_SET = """
local stored = redis.call('HMGET', KEYS[1], ARGV[5], ARGV[6])
if not stored[1] then return 0 end
if stored[2] ~= ARGV[4] then return -1 end
if stored[1] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[5], ARGV[3], unpack(ARGV, 7))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""

# KEYS: session hash, owner index. ARGV: idle TTL ms.
_TOUCH = """
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""

# KEYS: session hash, owner index. ARGV: session id.
_DELETE = """
local removed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return removed
"""

# Listing reads at most this many batches; a page cut short by many expired ids still carries a token.
_MAX_LIST_BATCHES = 16
# Ids checked per round trip when a full owner index is pruned.
_PRUNE_BATCH = 500

# Errors that mean "the server is not reachable now"; asyncio's TimeoutError comes from the call bound.
_UNAVAILABLE_ERRORS = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)


@contextmanager
def _unavailable_on_connection_errors() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE_ERRORS as exc:
        raise StoreUnavailable(f"Redis is unavailable: {str(exc) or type(exc).__name__}") from exc


def _bytes(reply: object) -> bytes:
    """One value of a reply, which is bytes because the store's client does not decode responses."""
    if not isinstance(reply, bytes):
        raise TypeError(f"expected bytes from Redis, got {type(reply).__name__}: use decode_responses=False")
    return reply


class RedisSessionStore:
    """A `SessionStore` on Redis (see the module docstring for the layout)."""

    def __init__(
        self,
        client: Redis,
        idle_ttl_s: float,
        key_prefix: str = "siamstream:v1:",
        call_timeout_s: float = 2.5,
    ) -> None:
        """Use `client` (its responses must not be decoded: embeddings are bytes).

        `idle_ttl_s`: seconds without a write or touch after which a session expires; `call_timeout_s`:
        bound on one store call, retries included, after which it raises `StoreUnavailable`.
        """
        if idle_ttl_s <= 0:
            raise ValueError(f"idle_ttl_s must be positive, got {idle_ttl_s}")
        self._redis = client
        self._ttl_ms = max(1, round(idle_ttl_s * 1000))
        self._prefix = key_prefix
        self._call_timeout_s = call_timeout_s
        self._create = client.register_script(_CREATE)
        self._compare_and_set = client.register_script(_COMPARE_AND_SET)
        self._touch = client.register_script(_TOUCH)
        self._delete = client.register_script(_DELETE)

    @classmethod
    def from_url(
        cls,
        url: str,
        idle_ttl_s: float,
        key_prefix: str = "siamstream:v1:",
        socket_timeout_s: float = 0.5,
        health_check_interval_s: int = 10,
    ) -> Self:
        """A store with its own connection pool on `url` (`redis://HOST:PORT/DB` or `rediss://`).

        Redis answers in well under a millisecond, so half a second without an answer means it is gone.
        A command that fails on a connection is retried twice on a fresh one, after 50-200 ms: that is
        what rides over a Redis restart (without it, the first command after a restart fails with
        "Connection closed by server"), and a stopped or hung Redis is reported within about two seconds
        instead of after redis-py's default of ten retries with 5 s timeouts. Connections idle for
        `health_check_interval_s` are checked with a PING before use. A retried write whose first attempt
        did reach the server answers as a version conflict (`compare_and_set`) or an existing id (`create`).
        """
        client = Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2),
            health_check_interval=health_check_interval_s,
            decode_responses=False,
        )
        return cls(client, idle_ttl_s, key_prefix, call_timeout_s=5 * socket_timeout_s)

    async def create(self, record: SessionRecord, *, owner_limit: int) -> SessionRecord:
        fields = [*encode_fields(record, mutable_only=False), VERSION_FIELD.encode(), b"1"]
        keys = [self._session_key(record.session_id), self._owner_key(record.owner)]
        args: list[EncodableT] = [self._ttl_ms, record.session_id, owner_limit, *fields]
        with _unavailable_on_connection_errors():
            async with asyncio.timeout(self._call_timeout_s):
                created = await self._create(keys, args)
                if created == -1:
                    await self._prune(keys[1])
                    created = await self._create(keys, args)
        if created == -1:
            raise OwnerLimitReached(f"owner {record.owner} has {owner_limit} live sessions")
        if not created:
            raise SessionExistsError(f"session {record.session_id!r} already exists")
        return replace(record, version=1)

    async def has_room(self, owner: str, *, owner_limit: int) -> bool:
        index = self._owner_key(owner)
        with _unavailable_on_connection_errors():
            async with asyncio.timeout(self._call_timeout_s):
                if await self._redis.zcard(index) < owner_limit:
                    return True
                await self._prune(index)  # as `create` does: expired ids only make the count too high
                return await self._redis.zcard(index) < owner_limit

    async def get(self, session_id: str) -> SessionRecord | None:
        with _unavailable_on_connection_errors():
            async with asyncio.timeout(self._call_timeout_s):
                fields = await self._redis.hgetall(self._session_key(session_id))
        if not fields:
            return None
        return decode_record({_bytes(field): _bytes(value) for field, value in fields.items()})

    async def compare_and_set(self, record: SessionRecord, expected_version: int) -> bool:
        keys = [self._session_key(record.session_id), self._owner_key(record.owner)]
        args: list[EncodableT] = [
            self._ttl_ms,
            str(expected_version),
            str(expected_version + 1),
            record.owner,
            VERSION_FIELD,
            OWNER_FIELD,
            *encode_fields(record, mutable_only=True),
        ]
        with _unavailable_on_connection_errors():
            async with asyncio.timeout(self._call_timeout_s):
                outcome = await self._compare_and_set(keys, args)
        if outcome == -1:
            raise ValueError(f"session {record.session_id!r} belongs to another owner")
        return outcome == 1

    async def delete(self, session_id: str) -> bool:
        session_key = self._session_key(session_id)
        with _unavailable_on_connection_errors():
            async with asyncio.timeout(self._call_timeout_s):
                owner = await self._redis.hget(session_key, OWNER_FIELD)
                if owner is None:
                    return False
                removed = await self._delete(
                    [session_key, self._owner_key(_bytes(owner).decode())], [session_id]
                )
        return removed == 1

    async def list(self, owner: str, page_size: int, page_token: str = "") -> SessionPage:
        check_page_size(page_size)
        after = decode_page_token(page_token)
        index = self._owner_key(owner)
        records: list[SessionRecord] = []
        start: str | bytes = "-" if after is None else f"({after}"
        with _unavailable_on_connection_errors():
            async with asyncio.timeout(self._call_timeout_s):
                for _ in range(_MAX_LIST_BATCHES):
                    # One more than the page holds tells whether another page follows.
                    wanted = page_size + 1 - len(records)
                    reply = await self._redis.zrange(index, start, "+", bylex=True, offset=0, num=wanted)
                    ids = [_bytes(session_id) for session_id in reply]
                    records += await self._read_live(index, owner, ids)
                    if len(records) > page_size:
                        next_token = encode_page_token(records[page_size - 1].session_id)
                        return SessionPage(tuple(records[:page_size]), next_token)
                    if len(ids) < wanted:
                        return SessionPage(tuple(records), "")
                    last_read = ids[-1]
                    start = b"(" + last_read
        # Many expired ids in a row: return what was found and resume after the last id read.
        return SessionPage(tuple(records), encode_page_token(last_read.decode()))

    async def touch(self, session_id: str) -> bool:
        session_key = self._session_key(session_id)
        with _unavailable_on_connection_errors():
            async with asyncio.timeout(self._call_timeout_s):
                owner = await self._redis.hget(session_key, OWNER_FIELD)
                if owner is None:
                    return False
                touched = await self._touch(
                    [session_key, self._owner_key(_bytes(owner).decode())], [self._ttl_ms]
                )
        return touched == 1

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _prune(self, index: str) -> None:
        """Remove the ids of expired sessions from the owner index `index`, all of it, in batches."""
        start: bytes = b"-"
        while True:
            reply = await self._redis.zrange(index, start, "+", bylex=True, offset=0, num=_PRUNE_BATCH)
            ids = [_bytes(session_id) for session_id in reply]
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.exists(self._session_key(session_id.decode()))
                live = await pipe.execute()
            expired = [session_id for session_id, exists in zip(ids, live, strict=True) if not exists]
            if expired:
                await self._redis.zrem(index, *expired)
            if len(ids) < _PRUNE_BATCH:
                return
            start = b"(" + ids[-1]

    async def _read_live(self, index: str, owner: str, ids: Sequence[bytes]) -> Sequence[SessionRecord]:
        """The records of `ids` that still exist, removing the others from the owner index."""
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(self._session_key(session_id.decode()))
            hashes = await pipe.execute()
        live = [decode_record(fields) for fields in hashes if fields]
        expired = [session_id for session_id, fields in zip(ids, hashes, strict=True) if not fields]
        if expired:
            await self._redis.zrem(index, *expired)
        return [record for record in live if record.owner == owner]

    def _session_key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self._prefix}owner:{owner}"
