"""The stored state of one tracking session, and the page of a session listing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from dataclasses import dataclass

from siamstream_services.store.errors import InvalidPageToken

# Bytes per element of the dtypes a template embedding may have (torch names; bfloat16 has no numpy twin).
EMBEDDING_ITEMSIZE: dict[str, int] = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "uint8": 1,
    "int8": 1,
}

# Fields fixed at `create`; `compare_and_set` rewrites every other field.
IMMUTABLE_FIELDS = ("session_id", "owner", "tracker", "package_id", "created_at")

MAX_PAGE_SIZE = 100
_UINT64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    """One session: who owns it, what runs it, the tracker's state and the template embedding.

    `state_json` and `options_json` are opaque to the store (the tracker library and the service own their
    schemas). `embedding` holds the raw, C-ordered bytes of the template embedding tensor whose dtype and
    shape are given beside it. Timestamps are Unix seconds set by the caller. `version` is assigned by the
    store: 1 after `create`, incremented by every successful `compare_and_set`.
    """

    session_id: str
    owner: str
    tracker: str
    package_id: str
    options_json: str
    state_json: str
    embedding: bytes
    embedding_dtype: str
    embedding_shape: tuple[int, ...]
    created_at: float
    updated_at: float
    last_client_frame: int | None = None
    version: int = 0

    def __post_init__(self) -> None:
        if not self.session_id:
            raise ValueError("session_id must not be empty")
        itemsize = EMBEDDING_ITEMSIZE.get(self.embedding_dtype)
        if itemsize is None:
            known = ", ".join(sorted(EMBEDDING_ITEMSIZE))
            raise ValueError(f"embedding_dtype {self.embedding_dtype!r} is not one of {known}")
        if any(side < 0 for side in self.embedding_shape):
            raise ValueError(f"embedding_shape {self.embedding_shape} has a negative side")
        expected = math.prod(self.embedding_shape) * itemsize
        if len(self.embedding) != expected:
            raise ValueError(
                f"embedding has {len(self.embedding)} bytes, "
                f"{self.embedding_dtype}{list(self.embedding_shape)} needs {expected}"
            )
        if self.last_client_frame is not None and not 0 <= self.last_client_frame <= _UINT64_MAX:
            raise ValueError(f"last_client_frame {self.last_client_frame} is not a uint64")


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of an owner's sessions, ordered by session id.

    A page may hold fewer than the requested size even when more follow; the listing ends when
    `next_page_token` is empty.
    """

    records: tuple[SessionRecord, ...]
    next_page_token: str


def owner_key_id(api_key: str) -> str:
    """The owner id stored for an API key: a SHA-256 digest prefix, so the key itself is never stored."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def check_page_size(page_size: int) -> None:
    """Raise ValueError unless 1 <= page_size <= MAX_PAGE_SIZE."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}, got {page_size}")


def _page_token_digest(last_session_id: bytes) -> str:
    # Not a secret: it only tells a token this code made from garbage or a truncated copy, which would
    # otherwise list from wherever they happen to decode to. Any token reads the caller's own sessions only.
    return hashlib.sha256(b"siamstream page token:" + last_session_id).hexdigest()[:8]


def encode_page_token(last_session_id: str) -> str:
    """The token of the page that starts after `last_session_id`: the id, base64url, and a digest of it."""
    data = last_session_id.encode()
    return f"{base64.urlsafe_b64encode(data).decode()}.{_page_token_digest(data)}"


def decode_page_token(page_token: str) -> str | None:
    """The session id a page token starts after; None for the empty (first page) token.

    Raises `InvalidPageToken`, without the token in its message, for a token `encode_page_token` did not make.
    """
    if not page_token:
        return None
    try:
        last_session_id = base64.urlsafe_b64decode(page_token.partition(".")[0]).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidPageToken("invalid page token") from None
    # Only the exact token made for that id: the digest, and the one base64 spelling of the id.
    if encode_page_token(last_session_id) != page_token:
        raise InvalidPageToken("invalid page token")
    return last_session_id
