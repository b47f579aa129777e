"""A client whose host vanished loses its calls at the next unanswered keepalive ping.

A client behind a link that goes silent (its host lost power, a network partition) sends no FIN, so
without pings the service would hold its open streams until TCP gave up, hours later. Here the client
reaches the service through a loopback relay that, once told to, swallows every byte both ways while
keeping both connections open: what a vanished host looks like from the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from grpc import aio

from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.session_fixtures import (
    API_KEY_A,
    INIT_BOX,
    TRACKER,
    Service,
    auth,
    box_message,
    moving_target_frames,
    png_frame,
    running_service,
)

pytestmark = pytest.mark.asyncio

A = auth(API_KEY_A)
KEEPALIVE_INTERVAL_S = 0.3
# Ample for the relay on a loaded machine, where a false timeout would end the call before the silence.
KEEPALIVE_TIMEOUT_S = 1.0
# Bounds the wait for the service to end the call: several ping rounds, well under a default interval.
ENDED_WITHIN_S = 10.0
CHUNK_BYTES = 65536


class SilenceableRelay:
    """A TCP relay on a free loopback port to `target_port`; `silence()` makes it drop all it reads."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._silent = False
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> SilenceableRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._server.wait_closed()

    def silence(self) -> None:
        self._silent = True

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        service_reader, service_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        for reader, writer in ((client_reader, service_writer), (service_reader, client_writer)):
            pump = asyncio.create_task(self._pump(reader, writer))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK_BYTES):
                if not self._silent:
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def ended_track_calls(running: Service) -> float:
    """Track calls the service has ended so far, whatever their code: a closed connection ends the client's
    stream of requests, so the call may end as a half-closed one (OK) rather than CANCELLED."""
    return sum(
        sample.value
        for metric in running.server.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "siamstream_rpc_requests_total" and sample.labels["method"] == "Track"
    )


async def test_a_stream_of_a_vanished_client_ends_at_the_unanswered_ping(package_dir: Path) -> None:
    frame = png_frame(moving_target_frames(1)[0], 0)
    start = pb.StartTrackRequest(tracker=TRACKER, frame=frame, box=box_message(INIT_BOX))
    async with (
        running_service(
            package_dir, keepalive_interval_s=KEEPALIVE_INTERVAL_S, keepalive_timeout_s=KEEPALIVE_TIMEOUT_S
        ) as running,
        SilenceableRelay(running.port) as relay,
        aio.insecure_channel(f"127.0.0.1:{relay.port}") as channel,
    ):
        call = pb_grpc.TrackingServiceStub(channel).Track(metadata=A, timeout=60.0)
        await call.write(pb.TrackRequest(start=start))
        assert (await call.read()).session_id != ""
        relay.silence()
        silenced = time.monotonic()
        while ended_track_calls(running) == 0.0 and time.monotonic() - silenced < ENDED_WITHIN_S:
            await asyncio.sleep(0.05)
        ended_s = time.monotonic() - silenced
        # Read before the call is cancelled and the service drained, either of which would end it too.
        ended = ended_track_calls(running)
        call.cancel()
    assert ended == 1.0, f"the stream was still open {ended_s:.1f} s after the client went silent"
