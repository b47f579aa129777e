"""The interface every session store implements (in-process and Redis)."""

from __future__ import annotations

from typing import Protocol

from siamstream_services.store.record import SessionPage, SessionRecord


class SessionStore(Protocol):
    """Versioned session records that expire after an idle TTL.

    Every method raises `StoreUnavailable` when the backing server cannot be reached in bounded time.
    The idle TTL restarts on `create`, on a successful `compare_and_set` and on `touch`; reads do not
    extend it.
    """

    async def create(self, record: SessionRecord, *, owner_limit: int) -> SessionRecord:
        """Store a new session as version 1 and return it; `SessionExistsError` if the id is taken,
        `OwnerLimitReached` if `record.owner` already has `owner_limit` live sessions (checked and written
        atomically, so concurrent creates never exceed the limit)."""
        ...

    async def has_room(self, owner: str, *, owner_limit: int) -> bool:
        """Whether `owner` has fewer than `owner_limit` live sessions now. Advisory: it lets a start be
        refused before its costly work, but a concurrent create may fill the place; `create` checks
        again atomically."""
        ...

    async def get(self, session_id: str) -> SessionRecord | None:
        """The stored session, or None when it does not exist or has expired."""
        ...

    async def compare_and_set(self, record: SessionRecord, expected_version: int) -> bool:
        """Atomically replace the session's mutable fields if its stored version is `expected_version`.

        On success the stored version becomes `expected_version + 1` and the idle TTL restarts; returns
        False (writing nothing) when the session is missing or its version differs. The fields in
        `IMMUTABLE_FIELDS` are kept from `create`; `record.version` is ignored. Raises ValueError when
        `record.owner` is not the stored owner.
        """
        ...

    async def delete(self, session_id: str) -> bool:
        """Remove the session; False when it did not exist."""
        ...

    async def list(self, owner: str, page_size: int, page_token: str = "") -> SessionPage:
        """One page of `owner`'s live sessions in session-id order, at most `page_size` (1..100) records.

        `page_token` is "" for the first page, then the previous page's `next_page_token`; a token not made
        by this method raises `InvalidPageToken`.
        """
        ...

    async def touch(self, session_id: str) -> bool:
        """Restart the session's idle TTL; False when it does not exist."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
