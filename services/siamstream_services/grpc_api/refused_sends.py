"""grpc's error line for a send it could not do on a call that is over, told as what it is: an INFO line.

When grpc cannot send a message, an abort's status or what ends a call after the servicer returned (a
unary response, a stream's final status), it logs "ExecuteBatchError raised in core by servicer method
[...]" at ERROR with a traceback, unless it has already noted that the client closed the call. A client that
cancels, or whose deadline passes, just as the answer goes out races that note: a service facing dropped
calls logged errors for calls that had only ended early, as any client may end them. The same line comes
for a message grpc refuses itself (over the send limit; the client gets RESOURCE_EXHAUSTED). Neither is a
failure of the service's code. The interceptor has already logged and counted such a call (CANCELLED for a
refused write or abort; OK for a unary answer refused after the servicer returned). Batches grpc would not
even start (`Failed grpc_call_start_batch`: a call misused) stay errors.
"""

from __future__ import annotations

import logging
import re

from .interceptors import log as rpc_log

GRPC_LOGGER = "grpc._cython.cygrpc"
_REFUSED_SEND = re.compile(r"ExecuteBatchError raised in core by servicer method \[(?P<method>.*)\]")
# How grpc's ExecuteBatchError reads when the batch started and its sends failed.
_SEND_FAILED = 'Failed "execute_batch"'


class RefusedSendFilter(logging.Filter):
    """Drops grpc's error record for a send refused on a call that is over, logging an INFO line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        refused = _REFUSED_SEND.fullmatch(record.getMessage())
        error = record.exc_info[1] if record.exc_info else None
        if refused is None or not str(error).startswith(_SEND_FAILED):
            return True
        rpc_log.info(
            "rpc method=%s: grpc could not send on the call, already over (the client gone, or a message "
            "over the send limit)",
            refused["method"],
        )
        return False


def quiet_refused_sends() -> None:
    """Put a `RefusedSendFilter` on grpc's logger, once per process."""
    logger = logging.getLogger(GRPC_LOGGER)
    if not any(isinstance(existing, RefusedSendFilter) for existing in logger.filters):
        logger.addFilter(RefusedSendFilter())
