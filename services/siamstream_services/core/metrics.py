"""Prometheus metrics of the session service, in their own registry, served on their own port.

Label values are bounded: tracker names come from the loaded packages, stages from `timings.STAGES`,
codes from `grpc.StatusCode`, methods from the service definition, statuses from `TrackStatus`. Session
ids never become labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from siamstream.tracking.state import TrackResult, TrackStatus

from .state import TrackedFrame
from .timings import StageTimings

# Milliseconds of one stage range from tens of microseconds (decode of a tiny frame) to seconds (a
# model server under overload): seconds buckets from 0.1 ms to 5 s.
STAGE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# A frame's score is a probability: tenths, with the ends split finer, where the status thresholds and the
# template-update gate of the registered trackers lie (0.3, 0.6, 0.9) and where a confident track sits.
SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass
class MetricsServer:
    """A running /metrics HTTP endpoint."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)


class ServiceMetrics:
    """All metrics of one service process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "siamstream_stage_seconds",
            "Wall-clock time of one frame per stage (decode, crop, inference, postprocess, store, total).",
            ["tracker", "stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.frames = Counter(
            "siamstream_frames",
            "Frames received for tracking (start and pushed frames), by tracker and gRPC status code.",
            ["tracker", "code"],
            registry=self.registry,
        )
        self.frames_replayed = Counter(
            "siamstream_frames_replayed",
            "Retried frames answered with their stored result, not tracked again (not in siamstream_frames).",
            ["tracker"],
            registry=self.registry,
        )
        self.requests = Counter(
            "siamstream_rpc_requests",
            "Completed RPCs by method and gRPC status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "siamstream_rpc_seconds",
            "Duration of completed RPCs by method (a Track stream counts as one call).",
            ["method"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.active_sessions = Gauge(
            "siamstream_sessions_active",
            "Sessions that this replica started or served a frame of within the idle TTL.",
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "siamstream_inference_batch_rows",
            "Rows (crops) per model run of the embedded backend, by tracker and stage (template, search).",
            ["tracker", "stage"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

        self.track_frames = Counter(
            "siamstream_track_frames",
            "Tracked frames (pushed, not start frames nor replays) by tracker and the status they ended in "
            "(tracking, uncertain, lost).",
            ["tracker", "status"],
            registry=self.registry,
        )
        self.track_score = Histogram(
            "siamstream_track_score",
            "Score of each tracked frame, by tracker.",
            ["tracker"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.template_updates = Counter(
            "siamstream_template_updates",
            "Online template updates applied (frames that reached the update gate), by tracker.",
            ["tracker"],
            registry=self.registry,
        )
        self.redetections = Counter(
            "siamstream_redetections",
            "Tracked frames that took a LOST track back to TRACKING, by tracker.",
            ["tracker"],
            registry=self.registry,
        )

    def observe_frame(self, tracker: str, timings: StageTimings) -> None:
        """Record the stage timings of one successfully tracked frame."""
        for stage, milliseconds in timings.as_dict().items():
            self.stage_seconds.labels(tracker, stage).observe(milliseconds / 1000.0)
        self.frames.labels(tracker, grpc.StatusCode.OK.name).inc()

    def observe_tracking(self, tracker: str, result: TrackResult, tracked: TrackedFrame) -> None:
        """Record the tracking quality of one tracked frame: its status and score, an applied template
        update, and a re-detection (the track was LOST before the frame and is TRACKING after it)."""
        self.track_frames.labels(tracker, result.status.value).inc()
        if result.score is not None:
            self.track_score.labels(tracker).observe(result.score)
        if tracked.template_updated:
            self.template_updates.labels(tracker).inc()
        if tracked.previous_status is TrackStatus.LOST and result.status is TrackStatus.TRACKING:
            self.redetections.labels(tracker).inc()

    def observe_replay(self, tracker: str) -> None:
        """Count one retried frame answered from its session's record."""
        self.frames_replayed.labels(tracker).inc()

    def observe_frame_error(self, tracker: str, code: grpc.StatusCode) -> None:
        """Count one refused frame; `tracker` is '' when the session could not be read."""
        self.frames.labels(tracker, code.name).inc()

    def observe_request(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.requests.labels(method, code.name).inc()
        self.request_seconds.labels(method).observe(seconds)

    def observe_batch(self, tracker: str, stage: str, rows: int, calls: int) -> None:
        """The embedded backend's `on_batch` hook: one model run of `rows` rows gathered from `calls` calls.

        Only `rows` is recorded: it is what fills the model (`calls` is at most `rows`).
        """
        self.batch_rows.labels(tracker, stage).observe(rows)

    def serve(self, port: int, address: str = "0.0.0.0") -> MetricsServer:
        """Serve /metrics over HTTP in a daemon thread; port 0 picks a free one."""
        server, thread = start_http_server(port, addr=address, registry=self.registry)
        return MetricsServer(server=server, thread=thread)
