"""API keys: who is calling, as the owner id that sessions are stored under.

A key is sent as `authorization: Bearer KEY` or `x-api-key: KEY`. With no keys configured authentication
is off and every caller is the same anonymous owner. Only a digest of the key is ever stored.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from contextvars import ContextVar

from siamstream_services.core.errors import Unauthenticated
from siamstream_services.store.record import owner_key_id

ANONYMOUS_OWNER = "anonymous"
BEARER_PREFIX = "bearer "

# Set by the auth interceptor for the duration of one RPC; read by the servicer.
current_owner: ContextVar[str] = ContextVar("siamstream_owner", default=ANONYMOUS_OWNER)


class ApiKeys:
    """The accepted API keys; an empty set turns authentication off."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode() for key in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def owner_of(self, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        """The owner id of the key in `metadata`; `Unauthenticated` when it is missing or unknown."""
        if not self.enabled:
            return ANONYMOUS_OWNER
        key = _presented_key(metadata)
        if key is None:
            raise Unauthenticated("missing API key: send 'authorization: Bearer KEY' or 'x-api-key: KEY'")
        # Compare against every key in constant time, so timing does not reveal a key's prefix.
        matches = [hmac.compare_digest(key.encode(), accepted) for accepted in self._keys]
        if not any(matches):
            raise Unauthenticated("unknown API key")
        return owner_key_id(key)


def _presented_key(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    for name, value in metadata:
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if name == "x-api-key" and text:
            return text
        if name == "authorization" and text.lower().startswith(BEARER_PREFIX):
            return text[len(BEARER_PREFIX) :].strip() or None
    return None
