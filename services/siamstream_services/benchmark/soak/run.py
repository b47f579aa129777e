"""Reliability soak of `siamstream serve` over a real redis-server under concurrent, seeded clients.

Starts both, drives the clients for the run's length with a Redis restart at half time, and reports
(bench/soak.py describes the run and its figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from grpc import aio
from grpc_health.v1 import health_pb2_grpc

from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream_services.client.frames import encode_frame
from siamstream_services.demo.packages import ChosenPackage, choose_package, export_random_package
from siamstream_services.testing.redis_server import RedisServer

from .clients import (
    DRAIN_TIMEOUT_S,
    Material,
    check_health,
    client_loop,
    count_sessions,
    poll_health,
    wait_for,
)
from .processes import ServiceProcess, process_sample
from .recorder import Recorder
from .report import print_summary, report, window_line


async def restart_redis(
    redis_server: RedisServer, at: float, down_s: float, recorder: Recorder, stop: asyncio.Event
) -> None:
    """At monotonic time `at`, stop redis-server by its pid, and start it again `down_s` later."""
    await wait_for(stop, at - time.monotonic())
    if stop.is_set():
        return
    recorder.redis_stopped_at = time.monotonic()
    recorder.event("redis stopped")
    await asyncio.to_thread(redis_server.stop)
    # Not cut short by `stop`: the service's final health must be read with its store back.
    await asyncio.sleep(down_s)
    await asyncio.to_thread(redis_server.start)
    recorder.redis_started_at = time.monotonic()
    recorder.event("redis started")


def close_window(recorder: Recorder, index: int, service: ServiceProcess, out: TextIO) -> None:
    window = recorder.windows[index]
    window.sample = process_sample(service.pid)
    print(window_line(index, len(recorder.windows), window), file=out, flush=True)


async def soak(
    args: argparse.Namespace, service: ServiceProcess, redis_server: RedisServer, material: Material
) -> dict:
    """Drive the clients for `args.minutes`, printing one line a window; the figures of the run."""
    out = sys.stderr if args.json else sys.stdout
    duration_s = args.minutes * 60.0
    windows = max(1, math.ceil(duration_s / args.window_s))
    at_start = process_sample(service.pid)
    started = time.monotonic()
    recorder = Recorder(started, args.window_s, windows)
    stop = asyncio.Event()
    clients = [
        asyncio.create_task(client_loop(index, args.seed, service.address, material, recorder, stop))
        for index in range(args.streams)
    ]
    health = asyncio.create_task(poll_health(service, recorder, stop))
    restart = asyncio.create_task(
        restart_redis(redis_server, started + duration_s / 2, args.redis_down_s, recorder, stop)
    )
    closed = 0
    for index in range(windows - 1):
        await wait_for(stop, started + (index + 1) * args.window_s - time.monotonic())
        if stop.is_set():
            break
        close_window(recorder, index, service, out)
        closed = index + 1
    await wait_for(stop, started + duration_s - time.monotonic())
    stop.set()
    _, late = await asyncio.wait(clients, timeout=DRAIN_TIMEOUT_S)
    for task in late:
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    await asyncio.gather(health, restart)
    # The window the run ended in (earlier when the service died) also takes the drained calls.
    last = min(max(closed, int((time.monotonic() - started - 1e-9) // args.window_s)), windows - 1)
    for index in range(closed, last + 1):
        close_window(recorder, index, service, out)
    alive = service.process.poll() is None
    async with aio.insecure_channel(service.address) as channel:
        health_at_end = (
            await check_health(health_pb2_grpc.HealthStub(channel), timeout_s=5.0) if alive else None
        )
    sessions = await count_sessions(service.address) if alive else None
    return report(
        args, recorder, recorder.windows[: last + 1], at_start, alive, health_at_end, sessions, len(late)
    )


def sequence_material(tracker: str, frame_count: int, seed: int) -> Material:
    sequence = generate_sequence(SequenceSpec(name="soak", length=frame_count, seed=seed))
    jpegs = [encode_frame(sequence.frame(index)) for index in range(frame_count)]
    boxes = [(float(x), float(y), float(w), float(h)) for x, y, w, h in sequence.ground_truth]
    return Material(tracker, jpegs, boxes)


def choose(args: argparse.Namespace, scratch: Path) -> ChosenPackage:
    if args.tracker and not args.package:
        return ChosenPackage(export_random_package(args.tracker, scratch), args.tracker, random_weights=True)
    return choose_package(args.package, args.tracker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--streams", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the sequence and of every client's draws"
    )
    parser.add_argument("--frames", type=int, default=30, help="frames of the generated sequence")
    parser.add_argument("--package", type=Path, help="tracker package to serve (default: the demo package)")
    parser.add_argument("--tracker", help="serve this tracker with seeded random weights (without --package)")
    parser.add_argument("--window-s", type=float, default=60.0, help="seconds per printed line")
    parser.add_argument("--redis-down-s", type=float, default=5.0, help="seconds redis-server stays down")
    parser.add_argument(
        "--idle-ttl-s",
        type=int,
        default=60,
        help="the service's session idle TTL (dropped streams leave sessions)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.streams < 1 or args.frames < 2 or args.window_s <= 0:
        parser.error("--minutes and --window-s must be positive, --streams at least 1, --frames at least 2")
    binary = shutil.which("redis-server")
    if binary is None:
        parser.error("redis-server is not installed (scripts/install_redis.sh)")
    with tempfile.TemporaryDirectory(prefix="siamstream-soak-") as scratch_dir:
        scratch = Path(scratch_dir)
        chosen = choose(args, scratch / "packages")
        material = sequence_material(chosen.tracker, args.frames, args.seed)
        redis_server = RedisServer(binary, appendonly=False)
        service: ServiceProcess | None = None
        try:
            redis_server.start()
            service = ServiceProcess(chosen.root, redis_server.url, scratch / "serve.log", args.idle_ttl_s)
            service.wait_serving()
            summary = asyncio.run(soak(args, service, redis_server, material))
            exit_code = service.process.poll()
            service.stop()
        finally:
            if service is not None:
                service.stop()
            redis_server.remove()
        summary["tracker"] = chosen.tracker
        summary["package"] = str(chosen.root) if not chosen.random_weights else "random weights"
        summary["random_weights"] = chosen.random_weights
        summary["service"].update(
            exit_code=exit_code, stop_exit_code=service.stop_exit_code, log=service.log_summary()
        )
        if exit_code is not None or summary["service"]["log"]["crash_markers"]:
            summary["service"]["log"]["tail"] = service.log_tail()
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0
