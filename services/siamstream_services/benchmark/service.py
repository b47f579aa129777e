"""Service benchmark: PushFrame latency and throughput at several stream counts, beside the raw model.

Everything runs in one process and one run, so the figures compare side by side: the search stage's
forward pass alone (TorchScript, batch of one, no service), then the service on loopback (memory store,
the chosen inference backend) with N concurrent client sessions, each pushing pre-encoded 640x480 JPEG
frames one call at a time. The client and the server share this machine's cores, so the throughput is a
lower bound of what the server alone sustains, never a capacity figure.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from siamstream.benchmark.timing import milliseconds_since
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.package import TrackerPackage, read_package
from siamstream.runner import PackageRunner
from siamstream.tracking.step import init_track, prepare_search
from siamstream_services.client.client import TrackingClient
from siamstream_services.client.frames import encode_frame
from siamstream_services.demo.local_service import local_service
from siamstream_services.demo.packages import export_random_package

from .model_server import model_server

FRAME_WIDTH, FRAME_HEIGHT = 640, 480
# Untimed pushes per session before timing: TorchScript's profiling executor optimises a graph on its
# second call per input shape, and the first calls also pay allocator and connection warm-up.
WARMUP_FRAMES = 2

Box = tuple[float, float, float, float]


def raw_search(package: TrackerPackage, frames: Sequence[np.ndarray], box: Box) -> Callable[[], object]:
    """One call of the search stage alone (batch of one, in this process) on a real crop."""
    runner = PackageRunner(package)
    state, request = init_track(package.config, frames[0], box)
    embedding = runner.template(request.crop, request.box_prior)
    crops = prepare_search(package.config, state, frames[1]).crops
    embeddings = np.repeat(embedding, crops.shape[0], axis=0)
    return lambda: runner.search(embeddings, crops)


async def measure_overhead(
    target: str, tracker: str, jpegs: list[bytes], box: Box, search: Callable[[], object]
) -> tuple[float, float]:
    """Medians of the raw search forward and of PushFrame (one session), measured alternately frame by
    frame so that both see the same machine load."""
    search_ms, push_ms = [], []
    async with TrackingClient(target) as client:
        session_id = (await client.start(jpegs[0], box, tracker)).session_id
        for index, jpeg in enumerate(jpegs[1:]):
            started = time.perf_counter()
            search()
            elapsed = milliseconds_since(started)
            pushed = await _push_ms(client, session_id, jpeg)
            if index >= WARMUP_FRAMES:
                search_ms.append(elapsed)
                push_ms.append(pushed)
        await client.stop(session_id)
    return float(np.median(search_ms)), float(np.median(push_ms))


async def _push_ms(client: TrackingClient, session_id: str, jpeg: bytes) -> float:
    """The round trip of one PushFrame call in ms, which the client measures for every push."""
    round_trip_ms = (await client.push(session_id, jpeg)).round_trip_ms
    if round_trip_ms is None:
        raise RuntimeError("the client returned a pushed result without its round trip")
    return round_trip_ms


async def _stream(
    target: str, tracker: str, jpegs: list[bytes], box: Box, ready: asyncio.Barrier
) -> list[float]:
    """One session: start, warm up, wait for the other streams, then push the rest; the timed round trips."""
    async with TrackingClient(target) as client:
        session_id = (await client.start(jpegs[0], box, tracker)).session_id
        for jpeg in jpegs[1 : 1 + WARMUP_FRAMES]:
            await client.push(session_id, jpeg)
        await ready.wait()
        latencies = []
        for jpeg in jpegs[1 + WARMUP_FRAMES :]:
            latencies.append(await _push_ms(client, session_id, jpeg))
        await client.stop(session_id)
    return latencies


async def measure_streams(target: str, tracker: str, jpegs: list[bytes], box: Box, streams: int) -> dict:
    """PushFrame p50/p99 over every timed push of `streams` concurrent sessions, and frames/s of them all."""
    ready = asyncio.Barrier(streams + 1)
    tasks = [asyncio.create_task(_stream(target, tracker, jpegs, box, ready)) for _ in range(streams)]
    await ready.wait()
    started = time.perf_counter()
    per_stream = await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started
    latencies = np.concatenate(per_stream)
    return {
        "streams": streams,
        "push_p50_ms": float(np.percentile(latencies, 50)),
        "push_p99_ms": float(np.percentile(latencies, 99)),
        "frames_per_s": len(latencies) / seconds,
    }


async def run(
    tracker: str,
    backend: str,
    streams: Sequence[int],
    frame_count: int,
    package_dir: Path | None = None,
    triton_venv: Path = Path(".triton-venv"),
) -> dict:
    """All figures of the service benchmark as one JSON-ready dict (times in ms).

    `frame_count` frames are timed per session (after the warm-up). Without `package_dir`, `tracker`
    is exported with seeded random weights into a temporary folder (speed does not depend on them).
    `service_overhead_ms` is the PushFrame p50 minus the raw search p50 of one session, the two measured
    alternately: decoding, cropping, post-processing, the store, gRPC and the backend's transport.
    """
    if frame_count < 1 or not streams or min(streams) < 1:
        raise ValueError("need at least one timed frame and stream counts of at least 1")
    sequence = generate_sequence(
        SequenceSpec(
            name="bench", width=FRAME_WIDTH, height=FRAME_HEIGHT, length=frame_count + 1 + WARMUP_FRAMES
        )
    )
    frames = [sequence.frame(index) for index in range(len(sequence))]
    jpegs = [encode_frame(frame) for frame in frames]
    x, y, w, h = (float(value) for value in sequence.init_box)
    box = (x, y, w, h)
    with tempfile.TemporaryDirectory(prefix="siamstream-bench-service-") as scratch:
        root = package_dir or export_random_package(tracker, Path(scratch) / "packages")
        package = read_package(root)
        if package.meta.tracker != tracker:
            raise ValueError(f"package {root} holds {package.meta.tracker!r}, not {tracker!r}")
        search = raw_search(package, frames, box)
        with model_server(backend, package, Path(scratch), triton_venv) as inference_backend:
            async with local_service(root, inference_backend) as target:
                search_ms, push_ms = await measure_overhead(target, tracker, jpegs, box, search)
                runs = [await measure_streams(target, tracker, jpegs, box, count) for count in streams]
    return {
        "tracker": tracker,
        "backend": backend,
        "frames": frame_count,
        "frame_size": [FRAME_WIDTH, FRAME_HEIGHT],
        "jpeg_kb_mean": float(np.mean([len(jpeg) for jpeg in jpegs]) / 1024),
        "threads": torch.get_num_threads(),
        "search_forward_ms_p50": search_ms,
        "push_beside_search_ms_p50": push_ms,
        "service_overhead_ms": push_ms - search_ms,
        "runs": runs,
    }


def print_report(report: dict) -> None:
    print(
        f"service {report['tracker']} on {report['backend']}: {report['frames']} timed frames per stream, "
        f"{report['frame_size'][0]}x{report['frame_size'][1]} JPEG ({report['jpeg_kb_mean']:.0f} KB), "
        f"{report['threads']} torch threads"
    )
    print(f"  search forward p50   {report['search_forward_ms_p50']:8.2f} ms (in process, no service)")
    print(f"  PushFrame p50        {report['push_beside_search_ms_p50']:8.2f} ms (alternating with it)")
    print(f"  service overhead     {report['service_overhead_ms']:8.2f} ms (PushFrame p50 - search p50)")
    print(f"  {'streams':>7s} {'push p50 ms':>12s} {'push p99 ms':>12s} {'frames/s':>9s}")
    for row in report["runs"]:
        print(
            f"  {row['streams']:7d} {row['push_p50_ms']:12.2f} {row['push_p99_ms']:12.2f} "
            f"{row['frames_per_s']:9.1f}"
        )
