"""Server interceptors: API-key authentication, and one log line plus metrics per call.

Both wrap the method handler's behaviour, so they see every call from its first byte to its final status
code, for unary and streaming methods alike. Health checks and reflection are exempt from authentication:
probes (kubelet, load balancers) carry no key, and neither service reveals session data.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from .auth import ApiKeys, current_owner
from .errors import Unauthenticated
from .metrics import ServiceMetrics

log = logging.getLogger("siamstream_services.session.rpc")

UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

# Wraps one call: entered before the behaviour runs, exited after its final status is set.
CallScope = Callable[[aio.ServicerContext], contextlib.AbstractAsyncContextManager[None]]


_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def _wrap(handler: grpc.RpcMethodHandler, scope: CallScope) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour run inside `scope`, in the behaviour's own style.

    A streaming behaviour is either an async generator or a coroutine that calls `context.write`
    (grpc's health Watch); grpc refuses to mix the two, so the wrapper keeps the original's style.
    """
    kind = next(name for name in _FACTORIES if getattr(handler, name) is not None)
    behaviour = getattr(handler, kind)
    if inspect.isasyncgenfunction(behaviour):

        async def wrapped(request: Any, context: aio.ServicerContext) -> Any:
            async with scope(context):
                async for response in behaviour(request, context):
                    yield response

    else:

        async def wrapped(request: Any, context: aio.ServicerContext) -> Any:
            async with scope(context):
                return await behaviour(request, context)

    return _FACTORIES[kind](wrapped, handler.request_deserializer, handler.response_serializer)


class AuthInterceptor(aio.ServerInterceptor):
    """Rejects calls without an accepted API key and makes the caller's owner id available."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(UNAUTHENTICATED_PREFIXES):
            return handler
        metadata = tuple(handler_call_details.invocation_metadata or ())

        @contextlib.asynccontextmanager
        async def authenticated(context: aio.ServicerContext) -> AsyncIterator[None]:
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
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method

        @contextlib.asynccontextmanager
        async def observed(context: aio.ServicerContext) -> AsyncIterator[None]:
            started = time.perf_counter()
            failure: BaseException | None = None
            try:
                yield
            except BaseException as error:
                failure = error
                raise
            finally:
                seconds = time.perf_counter() - started
                code = _final_code(context, failure)
                self._metrics.observe_request(method.rsplit("/", 1)[-1], code, seconds)
                log.info(
                    "rpc method=%s code=%s ms=%.2f peer=%s",
                    method,
                    code.name,
                    seconds * 1000.0,
                    context.peer(),
                    extra={"rpc_method": method, "rpc_code": code.name, "rpc_ms": round(seconds * 1000.0, 3)},
                )

        return _wrap(handler, observed)


def _final_code(context: aio.ServicerContext, failure: BaseException | None) -> grpc.StatusCode:
    """The status the call ends with: the one set by an abort, else what the outcome turns into."""
    code = context.code()  # None unless the call was aborted
    if code is not None:
        return code
    if failure is None:
        return grpc.StatusCode.OK
    if isinstance(failure, (asyncio.CancelledError, GeneratorExit)):  # client gone, deadline, shutdown
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN
