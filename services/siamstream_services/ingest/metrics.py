"""Prometheus metrics of camera ingestion.

The `camera` label takes camera keys (`<owner id>/<camera id>`), bounded by `IngestSettings.max_cameras`;
a camera's series are removed when its worker lets it go. The state is one gauge per (camera, state) set to
1 for the current state and 0 for the others, so `siamstream_camera_state{state="stale"} == 1` selects stale
cameras.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

from siamstream_services.cameras.health import CameraState


class IngestMetrics:
    """Camera metrics, in `registry` (the service's own when ingestion runs inside it)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.state = Gauge(
            "siamstream_camera_state",
            "1 for the camera's current connection state, 0 for the others.",
            ["camera", "state"],
            registry=self.registry,
        )
        self.reconnects = Counter(
            "siamstream_camera_reconnects",
            "Captures opened after the first one (reconnect attempts, successful or not).",
            ["camera"],
            registry=self.registry,
        )
        self.dropped_frames = Counter(
            "siamstream_camera_dropped_frames",
            "Frames replaced by a newer one before the tracker took them.",
            ["camera"],
            registry=self.registry,
        )
        self.frames = Counter(
            "siamstream_camera_frames",
            "Camera frames tracked (each frame once, whatever the number of targets).",
            ["camera"],
            registry=self.registry,
        )
        self.frame_age = Gauge(
            "siamstream_camera_frame_age_seconds",
            "Seconds since the camera's last frame was received (grows while it is stale or down).",
            ["camera"],
            registry=self.registry,
        )
        # Totals last reported per (counter, camera): the readers keep totals, counters take increments.
        self._reported: dict[tuple[str, str], int] = {}

    def report(
        self, camera: str, state: CameraState, reconnects: int, dropped: int, frame_age_s: float | None
    ) -> None:
        """Bring the camera's series to the reader's totals (counters only move up)."""
        for candidate in CameraState:
            self.state.labels(camera, candidate.value).set(1.0 if candidate is state else 0.0)
        self._advance(self.reconnects, "reconnects", camera, reconnects)
        self._advance(self.dropped_frames, "dropped", camera, dropped)
        if frame_age_s is not None:
            self.frame_age.labels(camera).set(frame_age_s)

    def forget(self, camera: str) -> None:
        """Remove the camera's series (its worker no longer reads it)."""
        for candidate in CameraState:
            _remove(self.state, camera, candidate.value)
        for metric in (self.reconnects, self.dropped_frames, self.frames, self.frame_age):
            _remove(metric, camera)
        self._reported = {key: total for key, total in self._reported.items() if key[1] != camera}

    def _advance(self, counter: Counter, name: str, camera: str, total: int) -> None:
        key = (name, camera)
        seen = self._reported.get(key, 0)
        if total > seen:
            counter.labels(camera).inc(total - seen)
        self._reported[key] = max(seen, total)


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
