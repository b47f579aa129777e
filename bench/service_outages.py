"""How fast the service tells a client that its session store is down, and how fast it serves again.

    .venv/bin/python bench/service_outages.py [--repeats 5] [--json]

A real `siamstream serve` process (embedded inference, `siamrpnpp_small` with seeded random weights) on a real
redis-server with an append-only file, both on free loopback ports, and one client session pushing
640x480 JPEG frames (client frame numbers, so that a frame refused during an outage is pushed again once
the store is back). Each repeat runs two outages:

- hung store: redis-server is SIGSTOPped (its port accepts, nothing answers); the time of one push, sent
  right after, to its UNAVAILABLE answer (bounded by `store_timeout_s`); then SIGCONT and the time of the
  next push, which succeeds;
- stopped store: redis-server is stopped (SIGTERM; its AOF keeps the session); the time of one push to its
  UNAVAILABLE answer and of the health service to NOT_SERVING (Health.Check every 50 ms); redis-server is
  started again, and from its first answered PING the time to the first push that succeeds (pushed every
  50 ms until one does) and to SERVING.

A normal push's round trip is printed for scale. Figures are medians with the range over the repeats (s).
Needs `redis-server` (`scripts/install_redis.sh`). Triton outages are not measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream_services.benchmark.soak.processes import ServiceProcess
from siamstream_services.client.client import TrackingClient
from siamstream_services.client.frames import encode_frame
from siamstream_services.demo.packages import export_random_package
from siamstream_services.testing.redis_server import RedisServer

TRACKER = "siamrpnpp_small"  # a light network: the figures are the service's, not the forward's
POLL_S = 0.05
# Every wait below ends within this bound (the service's store timeout and health interval are 2 s each).
WAIT_BOUND_S = 60.0
IDLE_TTL_S = 600
# Untimed pushes first: TorchScript optimises a graph on a later call, connections warm up.
WARMUP_PUSHES = 10
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Stream:
    """One session pushing the sequence's frames in a loop, each with the next client frame number."""

    def __init__(self, client: TrackingClient, jpegs: list[bytes], box: tuple[float, ...]) -> None:
        self.client, self.jpegs, self.box = client, jpegs, box
        self.session_id = ""
        self.number = 0

    async def start(self) -> None:
        self.session_id = (await self.client.start(self.jpegs[0], self.box, TRACKER)).session_id

    async def push(self) -> grpc.StatusCode:
        """Push the next frame; OK, or the error's code (the frame is then pushed again next time)."""
        jpeg = self.jpegs[1 + self.number % (len(self.jpegs) - 1)]
        try:
            await self.client.push(self.session_id, jpeg, client_frame_number=self.number + 1)
        except aio.AioRpcError as error:
            return error.code()
        self.number += 1
        return grpc.StatusCode.OK


async def timed(call: Callable[[], Awaitable[grpc.StatusCode]]) -> tuple[grpc.StatusCode, float]:
    started = time.monotonic()
    code = await call()
    return code, time.monotonic() - started


async def seconds_until(condition: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until `condition()` holds, trying every POLL_S; RuntimeError after WAIT_BOUND_S."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > WAIT_BOUND_S:
            raise RuntimeError(f"the condition did not hold within {WAIT_BOUND_S} s")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


def expect(code: grpc.StatusCode, wanted: grpc.StatusCode, what: str) -> None:
    if code != wanted:
        raise RuntimeError(f"{what}: expected {wanted.name}, got {code.name}")


async def one_repeat(
    stream: Stream, health: health_pb2_grpc.HealthStub, redis: RedisServer
) -> dict[str, float]:
    async def health_is(status: int) -> bool:
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except aio.AioRpcError:
            return False
        return bool(answer.status == status)

    async def push_succeeds() -> bool:
        return await stream.push() == grpc.StatusCode.OK

    figures: dict[str, float] = {}
    code, figures["normal_push_s"] = await timed(stream.push)
    expect(code, grpc.StatusCode.OK, "a push with the store up")

    await asyncio.to_thread(redis.freeze)
    code, figures["hung_store_unavailable_s"] = await timed(stream.push)
    expect(code, grpc.StatusCode.UNAVAILABLE, "a push to a hung store")
    redis.thaw()
    code, figures["after_thaw_push_s"] = await timed(stream.push)
    expect(code, grpc.StatusCode.OK, "the first push after the store thawed")

    await asyncio.to_thread(redis.stop)
    stopped = time.monotonic()
    code, figures["stopped_store_unavailable_s"] = await timed(stream.push)
    expect(code, grpc.StatusCode.UNAVAILABLE, "a push to a stopped store")
    await seconds_until(lambda: health_is(NOT_SERVING))
    figures["not_serving_after_stop_s"] = time.monotonic() - stopped
    await asyncio.to_thread(redis.start)  # returns once redis-server answers PING
    figures["first_push_after_restart_s"] = await seconds_until(push_succeeds)
    figures["serving_after_restart_s"] = await seconds_until(lambda: health_is(SERVING))
    return figures


async def measure(address: str, repeats: int, redis: RedisServer) -> list[dict[str, float]]:
    sequence = generate_sequence(SequenceSpec(name="outages", width=640, height=480, length=12))
    jpegs = [encode_frame(sequence.frame(index)) for index in range(len(sequence))]
    box = tuple(float(value) for value in sequence.init_box)
    async with TrackingClient(address) as client, aio.insecure_channel(address) as channel:
        stream = Stream(client, jpegs, box)
        await stream.start()
        for _ in range(WARMUP_PUSHES):
            expect(await stream.push(), grpc.StatusCode.OK, "a warm-up push")
        health = health_pb2_grpc.HealthStub(channel)
        return [await one_repeat(stream, health, redis) for _ in range(repeats)]


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "median_s": statistics.median(run[name] for run in runs),
            "min_s": min(run[name] for run in runs),
            "max_s": max(run[name] for run in runs),
        }
        for name in runs[0]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="outages of each kind")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    binary = shutil.which("redis-server")
    if binary is None:
        parser.error("redis-server is not installed (scripts/install_redis.sh)")
    with tempfile.TemporaryDirectory(prefix="siamstream-outages-") as scratch_dir:
        scratch = Path(scratch_dir)
        package = export_random_package(TRACKER, scratch / "packages")
        with RedisServer(binary, appendonly=True) as redis:
            service = ServiceProcess(package, redis.url, scratch / "serve.log", IDLE_TTL_S)
            try:
                service.wait_serving()
                runs = asyncio.run(measure(service.address, args.repeats, redis))
            finally:
                service.stop()
    summary = {"tracker": TRACKER, "repeats": args.repeats, "figures": summarise(runs), "runs": runs}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"service outages: {TRACKER} (embedded), redis-server with AOF, {args.repeats} repeats (seconds)")
    print(f"  {'':32s} {'median':>8s} {'min':>8s} {'max':>8s}")
    for name, figure in summary["figures"].items():
        print(f"  {name:32s} {figure['median_s']:8.3f} {figure['min_s']:8.3f} {figure['max_s']:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
