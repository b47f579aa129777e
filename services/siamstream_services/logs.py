"""Logging of the service processes (`siamstream serve`, `siamstream ingest`): one configuration for both.

`configure_logging` puts one handler on the root logger, writing text lines (for a terminal) or one JSON
object per line (for a log collector: `time`, `level`, `logger`, `message`, the record's extra fields as
keys, `exception` with its traceback). Either way every line carries the session it was emitted for:
the session id lives in a context variable that the session core binds (`bind_session_id`) once the
call's session exists, created or loaded for its owner, and `SessionFilter` copies it onto each record
the handler writes, whichever module logged it. An id a client sent is thus never bound for a call
refused NOT_FOUND, and the text format writes any id of other characters than letters, digits and `_.:-`
as its repr, so that no id can end a line or forge a field. The gRPC interceptor opens a fresh scope per call
(`session_scope`), so the per-call line it writes last carries the call's session too, and nothing leaks to
the next call; a call that acts on several sessions (DetachCamera) opens one per session; the camera
worker's targets run in tasks of their own, each with its own copy.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Literal

LogFormat = Literal["text", "json"]

_session_id: ContextVar[str] = ContextVar("siamstream_session_id", default="")

# Attributes every LogRecord has; any other attribute of a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "session_id",
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Session ids the text format writes as they are (the service's own are hex); any other is written as its
# repr, which escapes line breaks and quotes spaces.
_PLAIN_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]+")


def bind_session_id(session_id: str) -> None:
    """Name `session_id` on every line logged from now on in the current context (the call's task)."""
    _session_id.set(session_id)


@contextmanager
def session_scope() -> Iterator[None]:
    """A scope with no session bound (a call's, or one session's within a call), restored to what was
    bound before on exit."""
    token = _session_id.set("")
    try:
        yield
    finally:
        _session_id.reset(token)


class SessionFilter(logging.Filter):
    """Sets `record.session_id` to the session bound where the record is handled ('' for none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.session_id = _session_id.get()
        return True


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, then ` session_id=...` when the record carries a session (quoted and escaped unless it
    is one word of letters, digits and `_.:-`)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        session_id = record.__dict__.get("session_id")
        if not session_id:
            return text
        shown = session_id if _PLAIN_SESSION_ID.fullmatch(session_id) else repr(session_id)
        return f"{text} session_id={shown}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, session_id when there is
    one, every `extra=` field, and the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        session_id = record.__dict__.get("session_id")
        if session_id:
            document["session_id"] = session_id
        document.update(
            (name, value) for name, value in record.__dict__.items() if name not in _RECORD_ATTRIBUTES
        )
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        # str() for anything JSON has no form for (a Path, an enum): a log line must never fail.
        return json.dumps(document, default=str)


def configure_logging(log_format: LogFormat, level: str | int, stream: IO[str] | None = None) -> None:
    """Log every logger's records at `level` and above to `stream` (default: stderr) as `log_format`,
    each with its session. Replaces the root logger's handlers (the console script's default one)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(SessionFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
