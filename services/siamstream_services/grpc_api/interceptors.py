"""Server interceptors: API-key authentication, and one log line plus metrics per call.

Both wrap the method handler's behaviour, so they see every call from its first byte to its final status
code, for unary and streaming methods alike. Health checks and reflection are exempt from authentication:
probes (kubelet, load balancers) carry no key, and neither service reveals session data. Each call runs in
a logging scope of its own (`logs.session_scope`): the session core binds the call's session there, so every
line logged while handling the call, the call's own line last, names its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from grpc import aio

from siamstream_services.core.errors import Unauthenticated
from siamstream_services.core.metrics import ServiceMetrics
from siamstream_services.logs import session_scope
from siamstream_services.v1 import tracking_pb2

from .auth import ApiKeys, current_owner

log = logging.getLogger("siamstream_services.grpc_api.rpc")

UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_SERVICE = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name
# One call per frame: a line each at INFO would grow the log with the frame rate, so a frame answered OK is
# logged at DEBUG; a refused one stays at INFO.
PER_FRAME_METHODS = frozenset({f"/{_SERVICE}/PushFrame"})

# Wraps one call: entered before the behaviour runs, exited after its final status is set. (The aliases
# are strings: grpc's classes are generic in their stubs only.)
CallScope: TypeAlias = (
    "Callable[[aio.ServicerContext[Any, Any]], contextlib.AbstractAsyncContextManager[None]]"
)
# Method handlers of any request and response messages, as the interceptor chain passes them on.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def _wrap(handler: Handler, scope: CallScope) -> Handler:
    """The same handler with its behaviour run inside `scope`, always as a coroutine.

    A streaming behaviour is either an async generator or a coroutine that calls `context.write` (the
    health Watch). A generator is driven here, each response written with `context.write`, and closed
    before the call ends: grpc abandons a generator handler whose client cancels, and the garbage collector
    closes it later, in another task, after grpc has released the call. Its `finally` blocks (the scopes')
    then reached into the released call, which crashed the process with SIGSEGV, and reset context
    variables outside the context that set them.
    """
    kind = next(name for name in _FACTORIES if getattr(handler, name) is not None)
    behaviour = getattr(handler, kind)

    async def wrapped_stream(request: Any, context: aio.ServicerContext[Any, Any]) -> None:
        async with scope(context), contextlib.aclosing(behaviour(request, context)) as responses:
            async for response in responses:
                await context.write(response)

    async def wrapped(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        async with scope(context):
            return await behaviour(request, context)

    run = wrapped_stream if inspect.isasyncgenfunction(behaviour) else wrapped
    return _FACTORIES[kind](run, handler.request_deserializer, handler.response_serializer)


class AuthInterceptor(aio.ServerInterceptor):
    """Rejects calls without an accepted API key and makes the caller's owner id available."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(UNAUTHENTICATED_PREFIXES):
            return handler
        metadata = tuple(handler_call_details.invocation_metadata)

        @contextlib.asynccontextmanager
        async def authenticated(context: aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
            try:
                owner = self._keys.owner_of(metadata)
            except Unauthenticated as error:
                await context.abort(error.code, error.message)
            token = current_owner.set(owner)
            try:
                yield
            finally:
                current_owner.reset(token)

        return _wrap(handler, authenticated)


class ObservabilityInterceptor(aio.ServerInterceptor):
    """One structured log line and the request metrics per call: method, status code, milliseconds."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method

        @contextlib.asynccontextmanager
        async def observed(context: aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
            # Read while the call is certainly alive: once a call is cancelled, grpc may release it, and a
            # context method that reaches into it (peer()) then crashes the process.
            peer = context.peer()
            remaining_s = context.time_remaining()
            started = time.perf_counter()
            failure: BaseException | None = None
            with session_scope():
                try:
                    yield
                except BaseException as error:
                    failure = error
                    raise
                finally:
                    seconds = time.perf_counter() - started
                    code = _final_code(context, failure, seconds, remaining_s)
                    if isinstance(failure, aio.InternalError):
                        # Counted with the calls the client left (see `_final_code`), but said: it is also
                        # how grpc ends a call itself, e.g. for a response over the send limit.
                        log.info("rpc method=%s: grpc refused a write, the call is over: %s", method, failure)
                    self._metrics.observe_request(method.rsplit("/", 1)[-1], code, seconds)
                    per_frame = method in PER_FRAME_METHODS and code == grpc.StatusCode.OK
                    log.log(
                        logging.DEBUG if per_frame else logging.INFO,
                        "rpc method=%s code=%s ms=%.2f peer=%s",
                        method,
                        code.name,
                        seconds * 1000.0,
                        peer,
                        extra={
                            "rpc_method": method,
                            "rpc_code": code.name,
                            "rpc_ms": round(seconds * 1000.0, 3),
                        },
                    )

        return _wrap(handler, observed)


# A client whose deadline passes cancels the call itself, and the server, whose copy of the deadline runs
# from the request's arrival, can learn of that cancel a little before its own copy expires: a call torn
# down this close to its deadline is counted as having reached it.
DEADLINE_SLACK_S = 0.1


def _final_code(
    context: aio.ServicerContext, failure: BaseException | None, seconds: float, remaining_s: float | None
) -> grpc.StatusCode:
    """The status the call ends with: the one set by an abort, else what the outcome turns into.

    `seconds` is how long the call ran, `remaining_s` what was left of its deadline when it started.
    """
    # Client gone, deadline or shutdown: the call may be torn down already, so the context is left alone.
    # An InternalError is grpc refusing a write to a call that is over: mostly one the client closed
    # meanwhile, sometimes one grpc ended itself (a response over the send limit). The two look alike from
    # here: neither sets anything the context shows (`cancelled()` is only a status set by the servicer,
    # `done()` only a status sent by it), and grpc cancels the task after the refused write in both.
    if isinstance(failure, (asyncio.CancelledError, GeneratorExit, aio.InternalError)):
        if remaining_s is not None and seconds >= remaining_s - DEADLINE_SLACK_S:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    code = context.code()  # None unless the call was aborted
    if code is not None:
        return code
    return grpc.StatusCode.OK if failure is None else grpc.StatusCode.UNKNOWN
