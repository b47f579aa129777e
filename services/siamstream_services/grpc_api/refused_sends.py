"""grpc's error line for a call it could not end, told as what it is: one INFO line, no traceback.

When grpc cannot send what ends a call after the servicer has returned (a unary response, a stream's
final status), it logs "ExecuteBatchError raised in core by servicer method [...]" at ERROR with a
traceback of its own frames, unless it has already noted that the client closed the call. A client that
cancels, or whose deadline passes, just as the answer goes out races that note: a service facing dropped
calls logged errors for calls that had only ended early, as any client may end them. The same line comes
for a response grpc refuses itself (over the send limit; the client gets RESOURCE_EXHAUSTED). Neither is
a failure of the service's code, and a refused write or abort inside the servicer already ends the call as
a cancelled one (`interceptors`); this filter gives the rest the same treatment in the log.
"""

from __future__ import annotations

import logging
import re

from .interceptors import log as rpc_log

GRPC_LOGGER = "grpc._cython.cygrpc"
_REFUSED_SEND = re.compile(r"ExecuteBatchError raised in core by servicer method \[(?P<method>.*)\]")


class RefusedSendFilter(logging.Filter):
    """Drops grpc's error record for a call it could not end and logs an INFO line of the rpc log instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        refused = _REFUSED_SEND.fullmatch(record.getMessage())
        if refused is None:
            return True
        error = record.exc_info[1] if record.exc_info else None
        rpc_log.info(
            "rpc method=%s: grpc could not send the end of the call, already over (the client gone, or a "
            "response over the send limit): %s",
            refused["method"],
            error,
        )
        return False


def quiet_refused_sends() -> None:
    """Put a `RefusedSendFilter` on grpc's logger, once per process."""
    logger = logging.getLogger(GRPC_LOGGER)
    if not any(isinstance(existing, RefusedSendFilter) for existing in logger.filters):
        logger.addFilter(RefusedSendFilter())
