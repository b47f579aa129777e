"""The ingest worker process (`siamstream ingest`): an `IngestWorker` with its own session manager.

The worker tracks through the same `SessionManager`, inference backend and store as a session replica,
built from the same `ServiceSettings` by the same wiring (`siamstream_services.wiring`); the store must be
Redis, where the cameras and their leases live.
It serves its metrics (session stages and camera health in one registry) on `metrics_port` and, on
SIGTERM or SIGINT, stops its cameras and releases their leases so that another worker takes them over at
its next claim round instead of one lease TTL later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import uuid
from dataclasses import dataclass

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.core.metrics import MetricsServer
from siamstream_services.settings import RedisUrl, ServiceSettings
from siamstream_services.wiring import Runtime, open_runtime

from .metrics import IngestMetrics
from .worker import IngestWorker

log = logging.getLogger(__name__)


@dataclass
class IngestProcess:
    """One worker and what it runs on; `aclose()` once after the worker stopped."""

    worker: IngestWorker
    runtime: Runtime

    async def aclose(self) -> None:
        await self.runtime.aclose()


def worker_id() -> str:
    """The host name (the pod's name under Kubernetes) and a random suffix, unique per process start."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


def open_ingest(settings: ServiceSettings, ingest: IngestSettings) -> IngestProcess:
    """A worker over the packages, store and backend that `settings` name; ValueError without Redis."""
    if not isinstance(settings.store_url, RedisUrl):
        raise ValueError(
            f"the ingest worker needs a Redis store for its cameras and leases: set SIAMSTREAM_STORE_URL "
            f"to redis://HOST:PORT/DB (got {settings.store_url})"
        )
    runtime = open_runtime(settings, ingest)
    assert runtime.cameras is not None  # a Redis store always has its camera directory
    metrics = IngestMetrics(runtime.metrics.registry)
    worker = IngestWorker(runtime.cameras, runtime.session_manager(settings), metrics, worker_id=worker_id())
    return IngestProcess(worker, runtime)


async def run_ingest(settings: ServiceSettings, ingest: IngestSettings) -> None:
    """Run a worker until SIGTERM or SIGINT, then stop its cameras and release their leases."""
    process = open_ingest(settings, ingest)
    metrics_server: MetricsServer | None = None
    if settings.metrics_port:
        metrics_server = process.runtime.metrics.serve(settings.metrics_port, str(ingest.metrics_host))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = process.worker
    running = loop.create_task(worker.run(), name="ingest-worker")
    stopping = loop.create_task(stop.wait(), name="ingest-stop")
    log.info("ingest worker %s started", worker.worker_id)
    try:
        await asyncio.wait((running, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        stopping.cancel()
        running.cancel()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await running  # an error that ended the worker early is raised here
        finally:
            await worker.release()
            await process.aclose()
            if metrics_server is not None:
                metrics_server.stop()
            log.info("ingest worker %s stopped", worker.worker_id)
