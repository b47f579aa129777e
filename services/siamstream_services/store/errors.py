"""Errors raised by every session store."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The store's server cannot be reached (or did not answer in time); the call may be retried."""


class SessionExistsError(Exception):
    """`create` was given the id of a session that already exists."""


class OwnerLimitReached(Exception):
    """`create` was refused: the record's owner already has as many live sessions as its limit allows."""


class InvalidPageToken(ValueError):
    """A `list` page token was not produced by `list`."""
