"""Service benchmark: PushFrame latency and throughput at several stream counts, beside the raw model.

One run, so the figures compare side by side: the search stage's forward pass alone (the package's
stages, batch of one, no service; in a child process, so that torch runs on one thread of this one: the
service's inference thread), then the service on loopback (memory store, the chosen inference backend)
with N concurrent client sessions, each pushing pre-encoded 640x480 JPEG frames one call at a time. The
client and the server share this machine's cores, so the throughput is a lower bound of what the server
alone sustains, never a capacity figure.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from siamstream.benchmark.harness import median_interval
from siamstream.benchmark.timing import milliseconds_since
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.package import read_package
from siamstream.runner import PackageRunner
from siamstream.tracking.step import init_track, prepare_search
from siamstream_services.client.client import TrackingClient
from siamstream_services.client.frames import encode_frame
from siamstream_services.client.results import STAGE_FIELDS, FrameResult
from siamstream_services.core.frames import EncodedImage, FrameLimits, decode_frame
from siamstream_services.demo.local_service import local_service
from siamstream_services.demo.packages import export_random_package

from .model_server import model_server

FRAME_WIDTH, FRAME_HEIGHT = 640, 480
# Untimed pushes per session before timing: TorchScript's profiling executor optimises a graph on its
# second call per input shape, and the first calls also pay allocator and connection warm-up.
WARMUP_FRAMES = 2

Box = tuple[float, float, float, float]


def raw_search_ms(package_root: Path, frames: Sequence[np.ndarray], box: Box, count: int) -> list[float]:
    """`count` timed calls (after warm-up) of the package's search stage alone, batch of one, on a real
    crop of `frames[1]` around the target started on `frames[0]`, ms. Run in a child process
    (`raw_search_in_child`)."""
    package = read_package(package_root)
    runner = PackageRunner(package)
    state, request = init_track(package.config, frames[0], box)
    embedding = runner.template(request.crop, request.box_prior)
    crops = prepare_search(package.config, state, frames[1]).crops
    embeddings = np.repeat(embedding, crops.shape[0], axis=0)
    times = []
    for index in range(WARMUP_FRAMES + count):
        started = time.perf_counter()
        runner.search(embeddings, crops)
        if index >= WARMUP_FRAMES:
            times.append(milliseconds_since(started))
    return times


def raw_search_in_child(
    package_root: Path, frames: Sequence[np.ndarray], box: Box, count: int
) -> list[float]:
    """`raw_search_ms` in a child process, which has exited when this returns. Not in this process: torch
    called from a second thread (the service's inference runs in its own) gives OpenMP a second pool of
    threads, and on a small machine the two pools slow each other down for good (the service's forward
    took twice as long on 2 cores, BENCHMARKS.md session 8)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(raw_search_ms, package_root, list(frames[:2]), box, count).result()


async def measure_overhead(target: str, tracker: str, jpegs: list[bytes], box: Box, frame_count: int) -> dict:
    """The service overhead of one session over `frame_count` timed pushes, cycling through `jpegs[1:]`
    (the track runs on; the crops stay real): per frame, PushFrame's round trip minus the inference stage
    the service timed for that same frame (the search call to the backend), so that the forward's own
    spread (milliseconds, frame to frame) does not drown the overhead; its median with a bootstrap 95 %
    interval, and the medians of the service's stage timings and of the transport (round trip minus the
    service's total). After each push, the floor under the overhead: one ListTrackers round trip (gRPC,
    the interceptors and the client, no tracking work) and the same JPEG's decode alone in this thread."""
    push_ms: list[float] = []
    server_ms: dict[str, list[float]] = {name: [] for name in STAGE_FIELDS}
    floor_ms: dict[str, list[float]] = {"empty_rpc": [], "decode_alone": []}
    frames = jpegs[1:]
    limits = FrameLimits(max_bytes=max(map(len, jpegs)), max_pixels=FRAME_WIDTH * FRAME_HEIGHT)
    async with TrackingClient(target) as client:
        session_id = (await client.start(jpegs[0], box, tracker)).session_id
        for index in range(WARMUP_FRAMES + frame_count):
            jpeg = frames[index % len(frames)]
            pushed = await client.push(session_id, jpeg)
            started = time.perf_counter()
            await client.trackers()
            empty_rpc_ms = milliseconds_since(started)
            started = time.perf_counter()
            decode_frame(EncodedImage(jpeg), limits)
            decode_alone_ms = milliseconds_since(started)
            if index >= WARMUP_FRAMES:
                push_ms.append(_round_trip_ms(pushed))
                for name in STAGE_FIELDS:
                    server_ms[name].append(pushed.server_ms[name])
                floor_ms["empty_rpc"].append(empty_rpc_ms)
                floor_ms["decode_alone"].append(decode_alone_ms)
        await client.stop(session_id)
    overhead = np.subtract(push_ms, server_ms["inference_ms"])
    transport = np.subtract(push_ms, server_ms["total_ms"])
    return {
        "push_ms_p50": float(np.median(push_ms)),
        "service_overhead_ms": float(np.median(overhead)),
        "service_overhead_ci95_ms": list(median_interval(list(overhead))),
        "server_stage_ms_p50": {name: float(np.median(values)) for name, values in server_ms.items()},
        "transport_ms_p50": float(np.median(transport)),
        "empty_rpc_ms_p50": float(np.median(floor_ms["empty_rpc"])),
        "decode_alone_ms_p50": float(np.median(floor_ms["decode_alone"])),
    }


def _round_trip_ms(result: FrameResult) -> float:
    """The round trip of one PushFrame call in ms, which the client measures for every push."""
    if result.round_trip_ms is None:
        raise RuntimeError("the client returned a pushed result without its round trip")
    return result.round_trip_ms


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
            latencies.append(_round_trip_ms(await client.push(session_id, jpeg)))
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
    overhead_frames: int = 100,
) -> dict:
    """All figures of the service benchmark as one JSON-ready dict (times in ms).

    `frame_count` frames are timed per session of the stream runs (after the warm-up), `overhead_frames`
    frames for the overhead. Without `package_dir`, `tracker` is exported with seeded random weights into
    a temporary folder (speed does not depend on them). `service_overhead_ms` is the median over frames of
    PushFrame's round trip minus that frame's inference stage (`measure_overhead`): decoding, cropping,
    post-processing, the store, gRPC and the client. The raw forward runs in a spawned child process
    (`raw_search_in_child`): a script calling this needs the usual `if __name__ == "__main__":` guard.
    """
    if frame_count < 1 or overhead_frames < 2 or not streams or min(streams) < 1:
        raise ValueError("need a timed frame, two overhead frames and stream counts of at least 1")
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
        search_ms = raw_search_in_child(root, frames, box, overhead_frames)
        with model_server(backend, package, Path(scratch), triton_venv) as inference_backend:
            async with local_service(root, inference_backend) as target:
                overhead = await measure_overhead(target, tracker, jpegs, box, overhead_frames)
                runs = [await measure_streams(target, tracker, jpegs, box, count) for count in streams]
    return {
        "tracker": tracker,
        "backend": backend,
        "frames": frame_count,
        "frame_size": [FRAME_WIDTH, FRAME_HEIGHT],
        "jpeg_kb_mean": float(np.mean([len(jpeg) for jpeg in jpegs]) / 1024),
        "threads": torch.get_num_threads(),
        "overhead_frames": overhead_frames,
        "search_forward_ms_p50": float(np.median(search_ms)),
        **overhead,
        "runs": runs,
    }


def print_report(report: dict) -> None:
    print(
        f"service {report['tracker']} on {report['backend']}: {report['frames']} timed frames per stream, "
        f"{report['frame_size'][0]}x{report['frame_size'][1]} JPEG ({report['jpeg_kb_mean']:.0f} KB), "
        f"{report['threads']} torch threads"
    )
    print(f"  PushFrame p50        {report['push_ms_p50']:8.2f} ms (one session)")
    print(f"  search forward p50   {report['search_forward_ms_p50']:8.2f} ms (a child process, no service)")
    low, high = report["service_overhead_ci95_ms"]
    print(
        f"  service overhead     {report['service_overhead_ms']:8.2f} ms (median of PushFrame - its inference"
        f" stage over {report['overhead_frames']} frames; 95 % interval {low:.2f} to {high:.2f})"
    )
    stages = report["server_stage_ms_p50"]
    print(
        "  service stages p50   "
        + ", ".join(f"{name.removesuffix('_ms')} {stages[name]:.2f}" for name in STAGE_FIELDS)
        + f" ms; transport (round trip - service total) {report['transport_ms_p50']:.2f} ms"
    )
    empty_rpc, decode = report["empty_rpc_ms_p50"], report["decode_alone_ms_p50"]
    print(
        f"  overhead floor p50   {empty_rpc + decode:8.2f} ms (an empty ListTrackers round trip"
        f" {empty_rpc:.2f} + the JPEG's decode alone {decode:.2f}, after each push)"
    )
    print(f"  {'streams':>7s} {'push p50 ms':>12s} {'push p99 ms':>12s} {'frames/s':>9s}")
    for row in report["runs"]:
        print(
            f"  {row['streams']:7d} {row['push_p50_ms']:12.2f} {row['push_p99_ms']:12.2f} "
            f"{row['frames_per_s']:9.1f}"
        )
