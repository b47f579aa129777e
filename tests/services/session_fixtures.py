"""Helpers for the session service tests: a real siamrpn_alex package, synthetic frames, a loopback server.

Imported by `test_session_*.py` (pytest puts this directory on sys.path). The package holds the real
siamrpn_alex network with seeded random weights: the boxes mean nothing, but they are deterministic, so
the service must reproduce the offline tracker's boxes exactly.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import torch
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream.config import TemplateUpdateConfig, TrackerConfig
from siamstream.nn.network import build_network
from siamstream.package import export_package
from siamstream.registry import get_config
from siamstream_services.grpc_api.server import TrackingServer, open_server
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.memory import MemorySessionStore
from siamstream_services.store.protocol import SessionStore
from siamstream_services.store.record import SessionRecord
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc

TRACKER = "siamrpn_alex"
API_KEY_A = "test-key-alpha-0123456789"
API_KEY_B = "test-key-bravo-0123456789"
FRAME_WIDTH = 320
FRAME_HEIGHT = 240
TARGET_SIDE = 40
STEP_PX = 5
INIT_BOX = (100.0, 90.0, float(TARGET_SIDE), float(TARGET_SIDE))
# Small frame limits for the services that refuse frames, so that "oversized" frames stay cheap to build.
MAX_FRAME_PIXELS = 400 * 300
MAX_FRAME_BYTES = 1_000_000


def export_test_package(package_dir: Path, config: TrackerConfig | None = None) -> Path:
    """Export `config` (by default siamrpn_alex's registered one) with seeded random weights into
    `package_dir/<its name>`."""
    torch.manual_seed(0)
    config = get_config(TRACKER) if config is None else config
    network = build_network(config).eval()
    return export_package(network, config, package_dir / config.name).root


# The template update of `export_update_package`: gate 0 updates on every frame, so ten frames carry nine.
UPDATE_RATE = 0.3
UPDATE_GATE = 0.0


def export_update_package(package_dir: Path) -> Path:
    """Export siamrpn_alex (seeded random weights) with the template update as `package_dir/siamrpn_alex`."""
    update = TemplateUpdateConfig(enabled=True, rate=UPDATE_RATE, gate=UPDATE_GATE)
    config = get_config(TRACKER).model_copy(update={"template_update": update})
    return export_test_package(package_dir, config)


def moving_target_frames(
    count: int, width: int = FRAME_WIDTH, height: int = FRAME_HEIGHT
) -> list[np.ndarray]:
    """BGR frames of a textured square moving right and down by STEP_PX per frame over a fixed background."""
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (7, 7), 0)
    target = rng.integers(0, 256, (TARGET_SIDE, TARGET_SIDE, 3), dtype=np.uint8)
    frames = []
    for index in range(count):
        frame = background.copy()
        x, y = int(INIT_BOX[0]) + STEP_PX * index, int(INIT_BOX[1]) + STEP_PX * index
        frame[y : y + TARGET_SIDE, x : x + TARGET_SIDE] = target
        frames.append(frame)
    return frames


def encode(frame: np.ndarray, extension: str = ".png") -> bytes:
    ok, data = cv2.imencode(extension, frame)
    assert ok
    return data.tobytes()


def png_frame(frame: np.ndarray, number: int | None = None) -> pb.Frame:
    return pb.Frame(encoded=encode(frame), client_frame_number=number)


def box_message(box: tuple[float, float, float, float]) -> pb.Box:
    x, y, w, h = box
    return pb.Box(x=x, y=y, width=w, height=h)


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@dataclass
class Service:
    """A running service and a client channel to it."""

    server: TrackingServer
    store: MemorySessionStore
    channel: aio.Channel
    stub: pb_grpc.TrackingServiceStub
    port: int


def memory_service(package_dir: Path, **settings: Any) -> tuple[TrackingServer, MemorySessionStore]:
    """The service, not started, over a memory store and the embedded backend, and its store."""
    values: dict[str, Any] = {
        "package_dir": package_dir,
        "api_keys": [API_KEY_A, API_KEY_B],
        "metrics_port": 0,
        "drain_grace_s": 1.0,
    }
    values.update(settings)
    config = ServiceSettings(**values)
    store = MemorySessionStore(config.session_idle_ttl_s)
    return open_server(config, store=store), store


@asynccontextmanager
async def running_service(package_dir: Path, **settings: Any) -> AsyncIterator[Service]:
    """The service on a free loopback port over a memory store and the embedded backend; drained on exit."""
    server, store = memory_service(package_dir, **settings)
    port = await server.start("127.0.0.1:0")
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Service(server, store, channel, pb_grpc.TrackingServiceStub(channel), port)
    finally:
        await channel.close()
        await server.drain(grace_s=0.5)


async def stored_record(store: SessionStore, session_id: str) -> SessionRecord:
    """The record `store` holds for `session_id`, which the test has created."""
    record = await store.get(session_id)
    assert record is not None, f"no record for session {session_id}"
    return record


async def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    """The status code and details of an awaited call that is expected to fail."""
    try:
        await call  # type: ignore[misc]
    except aio.AioRpcError as error:
        return error.code(), error.details() or ""
    raise AssertionError("the call succeeded")


def wait_serving(
    address: str, process: subprocess.Popen[bytes], timeout_s: float, log_tail: Callable[[], str] = str
) -> None:
    """Wait until the `siamstream serve` `process` answers SERVING on `address`, at most `timeout_s`;
    fail with `log_tail()` when it exits or never does."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the service exited during start-up: {log_tail()}"
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"no SERVING health within {timeout_s} s: {log_tail()}")
