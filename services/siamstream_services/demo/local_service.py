"""The session service inside this process on a free loopback port, for the demo and the benchmarks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from siamstream_services.grpc_api.server import open_server
from siamstream_services.settings import ServiceSettings

# The interceptors log one INFO line per call under this name: noise in a demo or benchmark's output.
RPC_LOGGER = "siamstream_services.grpc_api.rpc"
# Nothing is in flight when a demo or benchmark stops the service; a short grace only bounds the stop.
DRAIN_GRACE_S = 2.0


def quiet_rpc_log() -> None:
    """Keep the per-call log lines of the in-process service out of the output (warnings still show)."""
    logging.getLogger(RPC_LOGGER).setLevel(logging.WARNING)


@asynccontextmanager
async def local_service(package: Path, inference_backend: str = "embedded") -> AsyncIterator[str]:
    """Serve the tracker package at `package` on 127.0.0.1 and yield the `HOST:PORT` to call.

    Embedded defaults apart from the backend: in-process memory store, no API key, no metrics endpoint.
    `inference_backend` is a `ServiceSettings.inference_backend` value (`embedded` or
    `triton://HOST:PORT`). The service is drained on exit.
    """
    settings = ServiceSettings(
        package_dir=package.parent,
        tracker_packages=[package.name],
        store_url="memory://",
        inference_backend=inference_backend,
        metrics_port=0,
        api_keys=[],
    )
    server = open_server(settings)
    port = await server.start("127.0.0.1:0")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.drain(grace_s=DRAIN_GRACE_S)
