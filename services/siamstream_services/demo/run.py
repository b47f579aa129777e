"""The demo itself: serve a package in-process, push a sequence through it with the client, summarise.

Frames are pushed one at a time with `PushFrame` (a live client waiting for each answer), so the latency
percentiles are those of single calls. Writes, under the output folder: `annotated.mp4`, `result.json`
(the layout of `siamstream track`) and `summary.json`.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from siamstream.annotate import AnnotatedVideoWriter
from siamstream.evaluation import evaluate_sequence
from siamstream_services.client.client import TrackingClient
from siamstream_services.client.result_file import frame_record, write_result_file
from siamstream_services.client.results import STAGE_FIELDS, FrameResult

from .local_service import local_service
from .packages import ChosenPackage
from .source import DemoSource

ANNOTATED_FILE = "annotated.mp4"
RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.json"


async def run_demo(out_dir: Path, source: DemoSource, package: ChosenPackage) -> dict:
    """Track `source` through a service on `package`, write the three files and return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    async with local_service(package.root) as target:
        with AnnotatedVideoWriter(out_dir / ANNOTATED_FILE) as writer:
            results, seconds = await _track(target, package.tracker, source, writer)
    records = [frame_record(result, source.init_box) for result in results]
    meta = {
        "tracker": package.tracker,
        "package": str(package.root),
        "random_weights": package.random_weights,
        "source": source.description,
        "init_box": list(source.init_box),
        "frames": len(records),
        "server": target,
    }
    write_result_file(out_dir / RESULT_FILE, meta, records)
    summary = summarise(results, seconds, source, records)
    summary = {"tracker": package.tracker, "random_weights": package.random_weights, **summary}
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


async def _track(
    target: str, tracker: str, source: DemoSource, writer: AnnotatedVideoWriter
) -> tuple[list[FrameResult], float]:
    """Start on the first frame, push every later one; the results and the wall time of the whole loop."""
    first = next(source.frames, None)
    if first is None:
        raise ValueError("the demo source holds no frames")
    async with TrackingClient(target) as client:
        started_at = time.perf_counter()
        started = await client.start(first, source.init_box, tracker)
        results = [started.result]
        writer.write(first, started.result.track_result())
        for frame in source.frames:
            result = await client.push(started.session_id, frame)
            results.append(result)
            writer.write(frame, result.track_result())
        seconds = time.perf_counter() - started_at
        await client.stop(started.session_id)
    return results, seconds


def summarise(results: list[FrameResult], seconds: float, source: DemoSource, records: list[dict]) -> dict:
    """Latency, stage and accuracy figures of one demo run (times in ms).

    `push_latency_ms`: client round trips of the PushFrame calls (the start frame excluded).
    `server_stage_ms_median`: medians of the server's per-stage timings over the same frames.
    `frames_per_s`: frames over the wall time of the whole loop (rendering or reading, encoding,
    pushing and annotating: what this one client achieved end to end).
    `accuracy`: success AUC, precision at 20 px and normalised precision at 0.2 against the ground
    truth (None for a video without ground truth).
    """
    pushed = results[1:]
    if not pushed:
        raise ValueError("the demo needs at least two frames (a start frame and a pushed one)")
    latencies = np.array([result.round_trip_ms for result in pushed])
    summary = {
        "frames": len(results),
        "source": source.description,
        "push_latency_ms": {
            "p50": float(np.percentile(latencies, 50)),
            "p99": float(np.percentile(latencies, 99)),
        },
        "server_stage_ms_median": {
            name.removesuffix("_ms"): statistics.median(result.server_ms[name] for result in pushed)
            for name in STAGE_FIELDS
        },
        "frames_per_s": len(results) / seconds,
        "accuracy": None,
    }
    if source.ground_truth is not None:
        metrics = evaluate_sequence(source.ground_truth, np.array([record["bbox"] for record in records]))
        summary["accuracy"] = {
            "success_auc": metrics.success_auc,
            "precision_20px": metrics.precision,
            "norm_precision_0.2": metrics.norm_precision,
        }
    return summary


def print_summary(summary: dict, out_dir: Path) -> None:
    latency = summary["push_latency_ms"]
    print(f"demo: {summary['tracker']} over {summary['frames']} frames ({summary['source']['kind']})")
    print(f"  PushFrame latency  p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms")
    stages = "  ".join(f"{name} {ms:.1f}" for name, ms in summary["server_stage_ms_median"].items())
    print(f"  server stages (median ms)  {stages}")
    print(f"  end to end         {summary['frames_per_s']:.1f} frames/s")
    accuracy = summary["accuracy"]
    if accuracy is not None:
        print(
            f"  accuracy           success AUC {accuracy['success_auc']:.3f}, "
            f"precision@20px {accuracy['precision_20px']:.3f}"
        )
    if summary["random_weights"]:
        print("  WARNING: random weights - the boxes and accuracy are meaningless without a trained package")
    print(f"  wrote {out_dir / ANNOTATED_FILE}, {out_dir / RESULT_FILE}, {out_dir / SUMMARY_FILE}")
