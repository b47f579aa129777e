"""Building, running and draining the session service process.

`TrackingServer` wires one `SessionManager` into a grpc.aio server with health checking, reflection,
the interceptors, optional TLS/mTLS, the metrics endpoint and, over a Redis store, the camera API;
`open_server` builds one from settings through `siamstream_services.wiring`. With
`health_listen_address` set, a second, plaintext server answers grpc.health.v1 alone, for probes that
cannot speak TLS (Kubernetes' gRPC probes, `siamstream health` in Docker's HEALTHCHECK).
`serve` runs it until SIGTERM or SIGINT and then drains: health turns NOT_SERVING, WatchTrack streams end,
no new call is accepted, calls in flight get the grace period, and the backend and stores are closed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cancellation import stop_if_cancelled
from siamstream_services.convert import tracker_infos
from siamstream_services.core.metrics import MetricsServer
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.errors import StoreUnavailable
from siamstream_services.store.protocol import SessionStore
from siamstream_services.v1 import tracking_pb2, tracking_pb2_grpc
from siamstream_services.wiring import Runtime, open_runtime

from .auth import ApiKeys
from .cameras import CameraApi
from .health import HealthServicer
from .interceptors import AuthInterceptor, ObservabilityInterceptor
from .refused_sends import quiet_refused_sends
from .servicer import TrackingServicer
from .tls import server_credentials

log = logging.getLogger(__name__)

SERVICE_NAME = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name
# Room for the rest of a request around the largest accepted frame.
MESSAGE_OVERHEAD_BYTES = 1024 * 1024
# Never used as a session id, so reading it only proves the store answers.
HEALTH_PROBE_SESSION = "siamstream-health-probe"
# grpc binds with SO_REUSEPORT by default: a second replica started on a port the first still serves then
# shared it, each taking some of the calls (and of a session's pushes), instead of failing to start.
EXCLUSIVE_PORT = ("grpc.so_reuseport", 0)


class TrackingServer:
    """The session service on one address, over the pieces of `runtime`: start it, then `drain` it once.

    The runtime's camera directory, when there is one, serves the camera RPCs. `drain` closes the runtime.
    The health server on `settings.health_listen_address`, when set, starts and stops with the main one.
    """

    def __init__(self, settings: ServiceSettings, runtime: Runtime) -> None:
        self.settings = settings
        self.metrics = runtime.metrics
        self.manager = runtime.session_manager(settings)
        self._runtime = runtime
        self._health = HealthServicer()
        self._health_task: asyncio.Task[None] | None = None
        self._metrics_server: MetricsServer | None = None
        quiet_refused_sends()
        max_message = settings.max_frame_bytes + MESSAGE_OVERHEAD_BYTES
        self._server = aio.server(
            interceptors=[
                ObservabilityInterceptor(runtime.metrics),
                AuthInterceptor(ApiKeys(key.get_secret_value() for key in settings.api_keys)),
            ],
            options=[
                EXCLUSIVE_PORT,
                ("grpc.max_receive_message_length", max_message),
                ("grpc.max_send_message_length", max_message),
                ("grpc.keepalive_time_ms", round(settings.keepalive_interval_s * 1000)),
                ("grpc.keepalive_timeout_ms", round(settings.keepalive_timeout_s * 1000)),
                # grpc 1.85 waits for a keepalive ping's answer as long as for any ping (a minute by default).
                ("grpc.http2.ping_timeout_ms", round(settings.keepalive_timeout_s * 1000)),
            ],
        )
        cameras = runtime.cameras
        self._camera_api = CameraApi(cameras, self.manager) if cameras is not None else None
        servicer = TrackingServicer(
            self.manager, self._camera_api, tracker_infos(runtime.trackers, settings.inference_backend)
        )
        tracking_pb2_grpc.add_TrackingServiceServicer_to_server(servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        # The same servicer object, so both ports report one status. No interceptor: health needs no key,
        # and probes every few seconds would only pad the call metrics.
        self._health_server: aio.Server | None = None
        if settings.health_listen_address is not None:
            self._health_server = aio.server(options=[EXCLUSIVE_PORT])
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )

    async def start(self, address: str | None = None) -> int:
        """Bind `address` (default: the settings' listen address; port 0 picks one) and start serving.

        Returns the bound port. Health is NOT_SERVING until the store and backend have answered. Every
        port is bound before anything serves: when one cannot be (a port taken), `start` raises
        (RuntimeError for a gRPC port, OSError for the metrics port) and leaves nothing listening. TLS
        files that cannot serve raise `TlsFilesError`, naming the file, before any port is bound.
        """
        address = address or self.settings.listen_address
        health_address = self.settings.health_listen_address
        bound: list[aio.Server] = []
        try:
            port = _add_port(self._server, address, self._credentials(), "service port")
            bound.append(self._server)
            if self._health_server is not None and health_address is not None:
                _add_port(self._health_server, health_address, None, "health-only port")
                bound.append(self._health_server)
            if self.settings.metrics_port:
                host = address.rsplit(":", 1)[0].strip("[]")
                self._metrics_server = self.metrics.serve(self.settings.metrics_port, host)
        except BaseException:
            for server in bound:
                await _release(server)
            raise
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.start()
        if self._health_server is not None:
            await self._health_server.start()
            log.info("health only, plaintext, on %s", health_address)
        await self._update_health()
        self._health_task = asyncio.get_running_loop().create_task(self._watch_health())
        log.info("serving %s on port %d", ", ".join(self.manager.tracker_names), port)
        return port

    async def drain(self, grace_s: float | None = None) -> None:
        """Stop gracefully: NOT_SERVING, refuse new calls, give calls in flight `grace_s`, close all."""
        grace = self.settings.drain_grace_s if grace_s is None else grace_s
        log.info("draining: up to %.1f s for calls in flight", grace)
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await self._health.enter_graceful_shutdown()
        if self._camera_api is not None:
            # Open-ended streams: they would hold the whole grace period, then be cut off mid-read.
            self._camera_api.close()
        await self._server.stop(grace)
        if self._health_server is not None:
            # Stopped after the main server, so that probes read NOT_SERVING, not a refused connection,
            # for as long as calls drain.
            await self._health_server.stop(None)
        await self._runtime.aclose()
        if self._metrics_server is not None:
            self._metrics_server.stop()
        log.info("drained")

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()

    def _credentials(self) -> grpc.ServerCredentials | None:
        """The service port's TLS credentials, or None for plaintext; `TlsFilesError` for unusable files."""
        settings = self.settings
        if settings.tls_cert_file is None or settings.tls_key_file is None:
            return None
        return server_credentials(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)

    async def _watch_health(self) -> None:
        """Re-check readiness every `health_interval_s`; a probe reads the status from memory."""
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            try:
                await self._update_health()
            except Exception:
                # An unexpected failure of a probe must not end the loop: the replica would keep its last
                # status forever. Report it unready until a probe succeeds again.
                log.exception("health probe failed")
                await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
            stop_if_cancelled()  # a probe's store or model-server client may have swallowed a drain's cancel

    async def _update_health(self) -> None:
        ready = await self._ready()
        status = (
            health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._set_health(status)

    async def _ready(self) -> bool:
        """True when the inference backend is ready and the store answers a read."""
        try:
            async with asyncio.timeout(self.settings.health_probe_timeout_s):
                await self._runtime.store.get(HEALTH_PROBE_SESSION)
                return await self._runtime.backend.ready()
        except (StoreUnavailable, TimeoutError):
            return False

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for service in (health.OVERALL_HEALTH, SERVICE_NAME):
            await self._health.set(service, status)


def _add_port(server: aio.Server, address: str, credentials: grpc.ServerCredentials | None, role: str) -> int:
    """Bind `address` on `server` (plaintext without `credentials`) and return the port bound."""
    try:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)
    except RuntimeError as error:
        # grpc names the address, but neither which port it was for nor the likely cause.
        raise RuntimeError(
            f"cannot bind the {role} on {address}: the port is taken or the address is not this host's"
        ) from error


async def _release(server: aio.Server) -> None:
    """Close the ports bound on a server that never started: grpc listens from the bind on, and closes
    the sockets only when a started server stops (stopping one never started, or dropping it, does not)."""
    await server.start()
    await server.stop(None)


def open_server(
    settings: ServiceSettings,
    camera_settings: IngestSettings | None = None,
    *,
    store: SessionStore | None = None,
) -> TrackingServer:
    """A server over the packages, store and backend that `settings` name; `store`, when given, serves
    the sessions instead of the store of `settings.store_url` (and is closed with the server).

    Over a Redis store URL it also serves the camera API, on the camera directory that the ingest workers
    read (`camera_settings`, default: the `SIAMSTREAM_INGEST_*` environment, must name the workers' key
    prefix).
    """
    return TrackingServer(settings, open_runtime(settings, camera_settings, store=store))


async def serve(settings: ServiceSettings) -> None:
    """Run the service until SIGTERM or SIGINT, then drain it."""
    server = open_server(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await server.drain()
