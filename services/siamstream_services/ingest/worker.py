"""An ingest worker: claims cameras with leases, runs a `CameraRunner` per camera, lets go of lost ones.

Every `claim_interval_s` the worker renews its leases (a camera whose lease it lost, or could not renew in
time, is stopped at once: another worker may hold it), claims unheld cameras up to its capacity, and
brings its runners the cameras' current targets. Cancelling `run()` stops tracking at once and leaves the
leases to expire, as a crash would; `release()` afterwards hands the cameras over immediately.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable

from redis.exceptions import RedisError

from siamstream_services.cameras.directory import CameraDirectory
from siamstream_services.cameras.health import lease_expired
from siamstream_services.cancellation import stop_if_cancelled
from siamstream_services.core.sessions import SessionManager

from .leases import CameraLeases
from .metrics import IngestMetrics
from .runner import CameraRunner

log = logging.getLogger(__name__)

# Our clock and Redis's may disagree slightly; stop a little before the lease can possibly pass on.
LEASE_CLOCK_MARGIN_S = 0.1


class IngestWorker:
    """Cameras of the deployment, tracked by this worker through `manager`."""

    def __init__(
        self,
        directory: CameraDirectory,
        manager: SessionManager,
        metrics: IngestMetrics,
        *,
        worker_id: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = directory.settings
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.leases = CameraLeases(
            directory.client, self.worker_id, self.settings.lease_ttl_ms, self.settings.key_prefix
        )
        self._directory = directory
        self._manager = manager
        self._metrics = metrics
        self._monotonic = monotonic
        self._runners: dict[str, CameraRunner] = {}
        self._renewed_at: dict[str, float] = {}

    @property
    def cameras(self) -> list[str]:
        """Keys (`camera_key`) of the cameras this worker reads now."""
        return sorted(self._runners)

    def runner(self, camera_key: str) -> CameraRunner | None:
        return self._runners.get(camera_key)

    async def run(self) -> None:
        """Claim and track cameras until cancelled."""
        try:
            while True:
                try:
                    await self.tick()
                except (RedisError, OSError, TimeoutError) as error:
                    log.warning("worker %s: Redis unavailable: %s", self.worker_id, error)
                stop_if_cancelled()
                await self._stop_expired()
                await asyncio.sleep(self.settings.claim_interval_s)
        finally:
            await asyncio.shield(self._stop_all())

    async def release(self) -> None:
        """Give up every lease still held (after `run()` ended), so other workers take over at once."""
        for camera_key in list(self._renewed_at):
            try:
                await self.leases.release(camera_key)
            except RedisError as error:
                log.warning("worker %s: could not release %s: %s", self.worker_id, camera_key, error)
        self._renewed_at.clear()

    async def tick(self) -> None:
        """One round: renew, drop lost cameras, claim new ones, refresh targets."""
        camera_keys = await self._directory.scope_unscoped(await self._directory.camera_keys())
        for camera_key in list(self._runners):
            started = self._monotonic()
            if camera_key in camera_keys and await self.leases.renew(camera_key):
                self._renewed_at[camera_key] = started
            else:
                log.info("worker %s: camera %s detached or its lease lost", self.worker_id, camera_key)
                self._renewed_at.pop(camera_key, None)
                await self._stop(camera_key)
        unheld = [camera_key for camera_key in camera_keys if camera_key not in self._runners]
        random.shuffle(unheld)  # workers starting together then spread the cameras between them
        for camera_key in unheld:
            if len(self._runners) >= self.settings.max_cameras_per_worker:
                break
            started = self._monotonic()
            if await self.leases.claim(camera_key):
                self._renewed_at[camera_key] = started
                await self._start(camera_key)
        for camera_key, runner in list(self._runners.items()):
            spec = await self._directory.camera(camera_key)
            if spec is not None:
                runner.update(spec, await self._directory.sessions(camera_key))

    async def _start(self, camera_key: str) -> None:
        spec = await self._directory.camera(camera_key)
        if spec is None:  # detached between listing and claiming
            await self.leases.release(camera_key)
            self._renewed_at.pop(camera_key, None)
            return
        sessions = await self._directory.sessions(camera_key)
        runner = CameraRunner(
            spec,
            sessions,
            self._manager,
            self._directory,
            self._metrics,
            self.worker_id,
            monotonic=self._monotonic,
        )
        runner.start()
        self._runners[camera_key] = runner
        log.info("worker %s: reading camera %s", self.worker_id, camera_key)

    async def _stop(self, camera_key: str) -> None:
        runner = self._runners.pop(camera_key, None)
        if runner is not None:
            await runner.stop()

    async def _stop_expired(self) -> None:
        ttl_s = self.settings.lease_ttl_ms / 1000
        now = self._monotonic()
        for camera_key in list(self._runners):
            if lease_expired(self._renewed_at.get(camera_key), now, ttl_s, LEASE_CLOCK_MARGIN_S):
                log.warning(
                    "worker %s: lease on %s not renewed in time; stopping it", self.worker_id, camera_key
                )
                self._renewed_at.pop(camera_key, None)
                await self._stop(camera_key)

    async def _stop_all(self) -> None:
        for camera_key in list(self._runners):
            await self._stop(camera_key)
