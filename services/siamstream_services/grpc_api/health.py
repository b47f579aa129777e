"""grpc.health.v1 of the session service: Check and Watch of the statuses the server sets.

grpcio-health-checking's asyncio servicer keeps one condition per service name and deletes it as soon as
any one of its watchers leaves: the other watchers of that name go on waiting on the deleted condition and
never hear of a later change. One cancelled Watch thus hid a drain's NOT_SERVING from every other watcher.
Here a single condition serves every name and outlives the watchers; each watcher writes outside its lock,
so a client slow to read holds up neither the others nor `set`.
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

ServingStatus: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthServicer(health_pb2_grpc.HealthServicer):
    """Statuses by service name ("" is the whole server, SERVING until set otherwise, as in grpc's)."""

    def __init__(self) -> None:
        self._statuses: dict[str, ServingStatus] = {"": SERVING}
        self._changed = asyncio.Condition()
        self._draining = False

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: aio.ServicerContext) -> None:
        """The service's status now and after every change, SERVICE_UNKNOWN while it has none."""
        sent: ServingStatus | None = None
        while True:
            async with self._changed:
                while self._status(request.service) == sent:
                    await self._changed.wait()
                sent = self._status(request.service)
            await context.write(health_pb2.HealthCheckResponse(status=sent))

    async def set(self, service: str, status: ServingStatus) -> None:
        """Set the status of `service`; ignored once `enter_graceful_shutdown` was called."""
        if self._draining:
            return
        async with self._changed:
            self._statuses[service] = status
            self._changed.notify_all()

    async def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for every service, for good."""
        self._draining = True
        async with self._changed:
            self._statuses = dict.fromkeys(self._statuses, NOT_SERVING)
            self._changed.notify_all()

    def _status(self, service: str) -> ServingStatus:
        return self._statuses.get(service, SERVICE_UNKNOWN)
