"""The session service inside this process on a free loopback port, for the demo and the benchmarks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from siamstream_services.grpc_api.server import open_server
from siamstream_services.settings import ServiceSettings

# The interceptors log a line per call under this name (INFO but for successful pushes): noise in a demo
# or benchmark's output.
RPC_LOGGER = "siamstream_services.grpc_api.rpc"
# Nothing is in flight when a demo or benchmark stops the service; a short grace only bounds the stop.
DRAIN_GRACE_S = 2.0


@contextmanager
def quiet_rpc_log(quiet: bool = True) -> Iterator[None]:
    """While open (and `quiet`), keep the per-call log lines of the in-process service out of the output
    (warnings still show); the logger's level comes back on exit, so a caller in a longer-lived process
    (the tests run the commands in-process) leaves logging as it found it."""
    logger = logging.getLogger(RPC_LOGGER)
    previous = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


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
