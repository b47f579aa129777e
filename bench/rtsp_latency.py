"""Camera latency end to end: from a frame leaving the RTSP server to its result on WatchTrack.

    .venv/bin/python bench/rtsp_latency.py [--seconds 30] [--width 640 --height 480 --fps 30]

Starts a redis-server, the RTSP test camera (siamstream_services.testing, run by Debian's python3, which
logs when each frame enters its encoder), and in this process the session service over that Redis
(embedded backend, siamrpn_alex with seeded random weights) plus one ingest worker; then attaches the
camera through gRPC and reads WatchTrack. A result names the worker's frame sequence number; the frame
itself, still in the worker's recent-frame history, carries the camera's frame index drawn in its pixels,
which the timeline maps to the time it left the server. Per result:
- `latency`: result arrival on WatchTrack minus the frame's time at the server (everything);
- `delivery`: the worker's receive time (`capture_time`) minus the time at the server (encode, RTP over
  TCP, decode: what the camera link costs);
- `tracking`: arrival minus `capture_time` (waiting for the tracker, tracking, Redis stream, gRPC).
The first `--warmup-s` seconds of results are left out. Everything shares this machine's cores (on 2
cores the tracker cannot follow 30 frames/s: frames it never took are dropped, which `tracked_fps`
shows), so read the figures as a breakdown of where the time goes, not as a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from grpc import aio

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import CameraDirectory, camera_key
from siamstream_services.demo.packages import export_random_package
from siamstream_services.grpc_api.auth import ANONYMOUS_OWNER
from siamstream_services.grpc_api.server import open_server
from siamstream_services.ingest.metrics import IngestMetrics
from siamstream_services.ingest.worker import IngestWorker
from siamstream_services.settings import ServiceSettings
from siamstream_services.testing.ports import free_port
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.testing.rtsp_camera import RtspCamera, decode_index
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc

TRACKER = "siamrpn_alex"
CAMERA_ID = "bench-camera"
# On the scene's first frame (siamstream_services/testing/rtsp_server.py: the target starts at the margin).
BOX = pb.Box(x=24, y=24, width=48, height=48)
# Ten seconds at 30 frames/s: a result's frame is still in the history when it arrives.
HISTORY_FRAMES = 300


def percentile_ms(values_s: list[float], q: float) -> float:
    return round(float(np.percentile(values_s, q)) * 1000, 1)


async def measure(args: argparse.Namespace, scratch: Path, redis_url: str, timeline: Path) -> dict:
    export_random_package(TRACKER, scratch / "packages")
    settings = ServiceSettings(
        package_dir=scratch / "packages", store_url=redis_url, metrics_port=0, drain_grace_s=1.0
    )
    ingest = IngestSettings(key_prefix=f"bench-{uuid.uuid4().hex[:8]}:", history_frames=HISTORY_FRAMES)
    server = open_server(settings, ingest)
    port = await server.start("127.0.0.1:0")
    directory = CameraDirectory.from_url(redis_url, ingest)
    worker = IngestWorker(directory, server.manager, IngestMetrics(server.metrics.registry))
    camera = RtspCamera(free_port(), args.width, args.height, args.fps, timeline=timeline)
    camera.start()
    worker_task = asyncio.get_running_loop().create_task(worker.run())
    # (camera frame index, worker receive time, arrival time), all wall-clock seconds.
    samples: list[tuple[int, float, float]] = []
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TrackingServiceStub(channel)
            attach = pb.AttachCameraRequest(camera_id=CAMERA_ID, url=camera.url, box=BOX, tracker=TRACKER)
            target_id = (await stub.AttachCamera(attach)).target_id
            watch = stub.WatchTrack(pb.WatchTrackRequest(camera_id=CAMERA_ID, target_id=target_id))
            started = time.time()
            async with asyncio.timeout(args.seconds + 60):
                async for result in watch:
                    arrived = time.time()
                    runner = worker.runner(camera_key(ANONYMOUS_OWNER, CAMERA_ID))
                    frames = {f.sequence: f for f in runner.reader.history()} if runner else {}
                    frame = frames.get(result.result.client_frame_number)
                    if frame is not None and arrived - started > args.warmup_s:
                        received = result.result.capture_time.ToNanoseconds() / 1e9
                        samples.append((decode_index(frame.image), received, arrived))
                    if arrived - started > args.warmup_s + args.seconds:
                        break
            watch.cancel()
            runner = worker.runner(camera_key(ANONYMOUS_OWNER, CAMERA_ID))
            if runner is None:
                raise RuntimeError(f"camera {CAMERA_ID} is no longer attached to the ingest worker")
            dropped = runner.reader.dropped_frames
    finally:
        worker_task.cancel()
        await asyncio.gather(worker_task, return_exceptions=True)
        await worker.release()
        await directory.aclose()
        await server.drain(grace_s=1.0)
        camera.kill()
    left_server = {}
    for line in timeline.read_text().splitlines():
        index, unix = line.split()
        left_server[int(index)] = float(unix)
    timed = [(left_server[i], received, arrived) for i, received, arrived in samples if i in left_server]
    latency = [arrived - sent for sent, _, arrived in timed]
    delivery = [received - sent for sent, received, _ in timed]
    tracking = [arrived - received for _, received, arrived in timed]
    return {
        "benchmark": "rtsp_latency",
        "tracker": TRACKER,
        "backend": "embedded",
        "frame": f"{args.width}x{args.height}",
        "camera_fps": args.fps,
        "results": len(timed),
        "tracked_fps": round(len(timed) / args.seconds, 1),
        "dropped_frames": dropped,
        "latency_ms_p50": percentile_ms(latency, 50),
        "latency_ms_p99": percentile_ms(latency, 99),
        "delivery_ms_p50": percentile_ms(delivery, 50),
        "delivery_ms_p99": percentile_ms(delivery, 99),
        "tracking_ms_p50": percentile_ms(tracking, 50),
        "tracking_ms_p99": percentile_ms(tracking, 99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds of results")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="seconds of results left out first")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args(argv)
    redis = RedisServer("redis-server", appendonly=False)
    redis.start()
    try:
        with tempfile.TemporaryDirectory(prefix="siamstream-bench-") as scratch:
            report = asyncio.run(measure(args, Path(scratch), redis.url, Path(scratch) / "timeline.txt"))
    finally:
        redis.remove()
    print(
        f"{report['frame']} at {report['camera_fps']} frames/s, {report['tracker']} embedded: "
        f"{report['results']} results ({report['tracked_fps']} tracked frames/s, "
        f"{report['dropped_frames']} frames dropped)"
    )
    for name in ("latency", "delivery", "tracking"):
        print(f"  {name:9s} p50 {report[f'{name}_ms_p50']:8.1f} ms   p99 {report[f'{name}_ms_p99']:8.1f} ms")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
