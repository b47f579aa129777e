"""What a process runs on, opened from its settings: the one place where settings become runtime objects.

`open_runtime` reads the tracker packages of `package_dir` (the catalog) and opens the inference backend
that `inference_backend` names (embedded or Triton), the session store of `store_url` (memory or Redis)
and, over Redis, the camera directory. The gRPC server (`grpc_api.server.open_server`) and the ingest
worker (`ingest.process.open_ingest`) are both built on it, so neither reaches into the other for its
pieces. The settings' typed values are dispatched on here; no URL is parsed again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from siamstream.package import TrackerPackage
from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import CameraDirectory
from siamstream_services.core.catalog import load_catalog
from siamstream_services.core.metrics import ServiceMetrics
from siamstream_services.core.sessions import ServedTracker, SessionManager
from siamstream_services.inference.backend import InferenceBackend
from siamstream_services.inference.embedded import EmbeddedBackend
from siamstream_services.settings import EmbeddedInference, RedisUrl, ServiceSettings, load_settings
from siamstream_services.store.memory import MemorySessionStore
from siamstream_services.store.protocol import SessionStore
from siamstream_services.store.redis_store import RedisSessionStore

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The runtime pieces of one process: the trackers it serves, its metrics, its inference backend,
    its session store and, over Redis, its camera directory. Whoever opened them closes them."""

    trackers: dict[str, ServedTracker]
    metrics: ServiceMetrics
    backend: InferenceBackend
    store: SessionStore
    cameras: CameraDirectory | None

    def session_manager(self, settings: ServiceSettings) -> SessionManager:
        """The session manager over these trackers, backend and store, with `settings`' limits and timeouts,
        reporting to these metrics. A process builds one: it owns the metrics' live-session gauge."""
        return SessionManager(self.store, self.backend, self.trackers, settings, metrics=self.metrics)

    async def aclose(self) -> None:
        """Close the backend, the store and the camera directory, in that order."""
        await self.backend.close()
        await self.store.aclose()
        if self.cameras is not None:
            await self.cameras.aclose()


def open_runtime(
    settings: ServiceSettings,
    camera_settings: IngestSettings | None = None,
    *,
    store: SessionStore | None = None,
) -> Runtime:
    """The pieces that `settings` name; `store`, when given, replaces the store of `settings.store_url`
    (and is the runtime's to close). Over a Redis store the camera directory is opened with
    `camera_settings` (default: the `SIAMSTREAM_INGEST_*` environment, which must name the workers' key
    prefix)."""
    catalog = load_catalog(settings.package_dir, settings.tracker_packages)
    metrics = ServiceMetrics()
    backend = open_backend(settings, catalog.packages, metrics)
    return Runtime(
        trackers=catalog.trackers,
        metrics=metrics,
        backend=backend,
        store=open_session_store(settings) if store is None else store,
        cameras=open_camera_directory(settings, camera_settings),
    )


def open_backend(
    settings: ServiceSettings, packages: Iterable[TrackerPackage], metrics: ServiceMetrics
) -> InferenceBackend:
    """The inference backend of `settings.inference_backend`, its batches reported to `metrics`."""
    backend = settings.inference_backend
    if isinstance(backend, EmbeddedInference):
        return EmbeddedBackend(
            packages,
            device=settings.device,
            max_batch_rows=settings.batch_max_size,
            max_wait_ms=settings.batch_max_wait_ms,
            on_batch=metrics.observe_batch,
        )
    # Imported here: the Triton client is the `triton` extra, which the embedded backend does not need.
    try:
        from siamstream_services.inference.triton import TritonBackend
    except ImportError as error:
        raise ValueError(
            f"inference backend {backend} needs the Triton client ({error}): pip install 'siamstream[triton]'"
        ) from error
    # Each model call gets the bound the session core puts on inference.
    return TritonBackend(backend.address, request_timeout_s=settings.inference_timeout_s)


def open_session_store(settings: ServiceSettings) -> SessionStore:
    """The session store of `settings.store_url`, expiring sessions after `session_idle_ttl_s`."""
    url = settings.store_url
    if isinstance(url, RedisUrl):
        log.info("sessions in Redis at %s", url.public())
        return RedisSessionStore.from_url(url.url, settings.session_idle_ttl_s)
    log.info("sessions in this process's memory")
    return MemorySessionStore(settings.session_idle_ttl_s)


def open_camera_directory(
    settings: ServiceSettings, camera_settings: IngestSettings | None = None
) -> CameraDirectory | None:
    """The camera directory in the Redis of `settings.store_url`; None over the memory store, which has
    no cameras. `camera_settings` default to the `SIAMSTREAM_INGEST_*` environment."""
    url = settings.store_url
    if not isinstance(url, RedisUrl):
        return None
    return CameraDirectory.from_url(url.url, camera_settings or load_settings(IngestSettings))
