"""Domain errors of the session service, each carrying the gRPC status code it is reported with."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A request the service refuses; `code` is the gRPC status the caller receives with `message`."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """Malformed frame, box or options, or a string field over its bound."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    """Unknown, stopped or expired session, a session of another API key, or an unknown tracker."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    """A frame whose client number does not advance the session."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(ServiceError):
    """A frame over the byte or pixel limit, or an API key at its limit of live sessions."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(ServiceError):
    """Concurrent writers kept winning the race for one session; the caller may retry."""

    code = grpc.StatusCode.ABORTED


class Unavailable(ServiceError):
    """The state store or the model server cannot be reached; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(ServiceError):
    """Missing or unknown API key."""

    code = grpc.StatusCode.UNAUTHENTICATED
