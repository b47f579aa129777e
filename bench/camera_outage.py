"""A worker over a camera outage: its memory and threads while the camera is down, and its recovery.

    .venv/bin/python bench/camera_outage.py [--outage-s 120] [--interval-s 5] [--backoff-max-s 10]

Starts a redis-server, the RTSP test camera (siamstream_services.testing, run by Debian's python3) and a
real `siamstream ingest` process (embedded backend, siamrpn_alex with seeded random weights, the default
ingest settings but `--backoff-max-s`), attaches the camera through the camera directory and follows its
results stream. After `--streaming-s` of tracking it kills the camera for `--outage-s`, then starts it
again on the same port. Every `--interval-s` it samples the worker's resident memory (VmRSS) and thread
count from /proc. It prints the figures at the start (before the outage), the largest during the outage,
and at the end (`--streaming-s` after the camera returned), plus the recovery time: from the camera
serving again to the first new result. A reader that leaked a capture or a thread per reconnect attempt
shows as growth between start and end; the recovery time is bounded by the backoff's longest delay plus
one stream open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from siamstream_services.benchmark.soak.processes import ProcessSample, process_sample
from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import CameraDirectory, TargetSpec, camera_key
from siamstream_services.demo.packages import export_random_package
from siamstream_services.testing.ports import free_port
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.testing.rtsp_camera import RtspCamera

TRACKER = "siamrpn_alex"
CAMERA_ID = "outage-camera"
OWNER = "anonymous"
SIAMSTREAM = Path(sys.executable).with_name("siamstream")
START_TIMEOUT_S = 120.0


class Follower:
    """Arrival times (monotonic seconds) of the target's results, read from the directory in a task."""

    def __init__(self, directory: CameraDirectory, target_id: str) -> None:
        self.arrivals: list[float] = []
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._follow(directory, target_id))

    async def _follow(self, directory: CameraDirectory, target_id: str) -> None:
        async for _ in directory.watch(camera_key(OWNER, CAMERA_ID), target_id, self._stop):
            self.arrivals.append(time.monotonic())

    async def first_after(self, since: float, timeout_s: float) -> float:
        """Monotonic time of the first result after `since`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            later = [t for t in self.arrivals if t > since]
            if later:
                return later[0]
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no result within {timeout_s} s")

    async def stop(self) -> None:
        self._stop.set()
        await self._task


async def sample_for(pid: int, seconds: float, interval_s: float) -> list[ProcessSample]:
    """The worker's memory and threads every `interval_s` for `seconds`; it must stay alive meanwhile."""
    samples = []
    deadline = time.monotonic() + seconds
    while True:
        sample = process_sample(pid)
        if sample is None:
            raise RuntimeError(f"the ingest worker (pid {pid}) exited during the benchmark")
        samples.append(sample)
        if time.monotonic() >= deadline:
            return samples
        await asyncio.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))


async def measure(args: argparse.Namespace, scratch: Path, redis_url: str) -> dict:
    export_random_package(TRACKER, scratch / "packages")
    ingest = IngestSettings(key_prefix=f"bench-{uuid.uuid4().hex[:8]}:", backoff_max_s=args.backoff_max_s)
    env = {
        **os.environ,
        "SIAMSTREAM_PACKAGE_DIR": str(scratch / "packages"),
        "SIAMSTREAM_STORE_URL": redis_url,
        "SIAMSTREAM_METRICS_PORT": "0",
        "SIAMSTREAM_INGEST_KEY_PREFIX": ingest.key_prefix,
        "SIAMSTREAM_INGEST_BACKOFF_MAX_S": str(args.backoff_max_s),
    }
    camera = RtspCamera(free_port())
    camera.start()
    directory = CameraDirectory.from_url(redis_url, ingest)
    log = (scratch / "ingest.log").open("wb")
    worker = subprocess.Popen([str(SIAMSTREAM), "ingest"], env=env, stdin=subprocess.DEVNULL, stderr=log)
    try:
        spec = TargetSpec(target_id="", tracker=TRACKER, box=(24, 24, 48, 48), anchor_unix=time.time())
        target_id = await directory.attach(OWNER, CAMERA_ID, camera.url, spec)
        follower = Follower(directory, target_id)
        await follower.first_after(0.0, START_TIMEOUT_S)
        before = await sample_for(worker.pid, args.streaming_s, args.interval_s)

        camera.kill()
        down_at = time.monotonic()
        during = await sample_for(worker.pid, args.outage_s, args.interval_s)
        results_during = sum(1 for t in follower.arrivals if t > down_at + 1.0)

        camera.start()
        back_at = time.monotonic()
        first = await follower.first_after(back_at, args.backoff_max_s + 30)
        after = await sample_for(worker.pid, args.streaming_s, args.interval_s)
        status = await directory.status(camera_key(OWNER, CAMERA_ID))
        await follower.stop()
        await directory.detach(OWNER, CAMERA_ID, "")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        log.close()
        await directory.aclose()
        camera.kill()
    return {
        "benchmark": "camera_outage",
        "outage_s": args.outage_s,
        "interval_s": args.interval_s,
        "backoff_max_s": args.backoff_max_s,
        "rss_mib": {
            "start": round(before[-1].rss_mib, 1),
            "outage_max": round(max(s.rss_mib for s in during), 1),
            "end": round(after[-1].rss_mib, 1),
        },
        "threads": {
            "start": before[-1].threads,
            "outage_max": max(s.threads for s in during),
            "end": after[-1].threads,
        },
        "rss_mib_outage_samples": [round(s.rss_mib, 1) for s in during],
        "threads_outage_samples": [s.threads for s in during],
        "results_during_outage": results_during,
        "recovery_s": round(first - back_at, 2),
        "reconnects": status.reconnects if status else None,
        "worker_exit_code": code,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage-s", type=float, default=120.0, help="seconds the camera stays down")
    parser.add_argument("--interval-s", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--streaming-s", type=float, default=15.0, help="tracking before and after")
    parser.add_argument(
        "--backoff-max-s",
        type=float,
        default=IngestSettings.model_fields["backoff_max_s"].default,
        help="longest reconnect delay of the worker",
    )
    args = parser.parse_args(argv)
    redis = RedisServer("redis-server", appendonly=False)
    redis.start()
    try:
        with tempfile.TemporaryDirectory(prefix="siamstream-bench-") as scratch:
            report = asyncio.run(measure(args, Path(scratch), redis.url))
    finally:
        redis.remove()
    rss, threads = report["rss_mib"], report["threads"]
    print(f"worker over a {report['outage_s']:.0f} s camera outage (sampled every {report['interval_s']} s)")
    for name, figures, form in (("RSS MiB", rss, "7.1f"), ("threads", threads, "7d")):
        start, peak, end = (format(figures[key], form) for key in ("start", "outage_max", "end"))
        print(f"  {name:8s}  start {start}   outage max {peak}   end {end}")
    print(
        f"  recovery {report['recovery_s']:.2f} s after the camera returned "
        f"(backoff at most {report['backoff_max_s']} s; {report['reconnects']} reconnect attempts)"
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
