"""`siamstream track`: one tracker over one video or frame folder, written as result.json."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

from siamstream.cli.library import existing_path, parse_box
from siamstream.tracking.state import TrackResult


def add_parser(root: argparse._SubParsersAction) -> None:
    parser = root.add_parser("track", help="track one target through a video or a folder of frames")
    parser.add_argument("--tracker", required=True, help="registry name; must match the package")
    parser.add_argument("--package", required=True, type=Path, help="tracker package directory")
    parser.add_argument("--video", required=True, type=existing_path, help="video file or frame folder")
    parser.add_argument("--box", required=True, type=parse_box, help="initial box x,y,w,h (image px)")
    parser.add_argument("--out", required=True, type=Path, help="result JSON to write")
    parser.add_argument("--annotated", type=Path, help="also write an annotated .mp4")
    parser.add_argument("--device", default="cpu", help="torch device of the model (cpu, cuda)")
    parser.set_defaults(run=run_track)


def result_record(result: TrackResult) -> dict:
    """One frame of result.json, in the layout of the reference tools."""
    return {"frame": result.frame_index, "bbox": list(result.bbox), "best_score": result.score}


def run_track(args: argparse.Namespace) -> int:
    # Deferred: torch and OpenCV load when a video is tracked, not whenever the parser is built.
    import torch
    from tqdm import tqdm

    from siamstream.annotate import AnnotatedVideoWriter
    from siamstream.data.frames import iter_frames
    from siamstream.package import read_package
    from siamstream.runner import TorchScriptRunner
    from siamstream.tracking.offline import OfflineTracker

    package = read_package(args.package)
    if package.meta.tracker != args.tracker:
        raise ValueError(f"package {args.package} holds {package.meta.tracker!r}, not {args.tracker!r}")
    tracker = OfflineTracker(package.config, TorchScriptRunner(package, args.device))
    records = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(AnnotatedVideoWriter(args.annotated)) if args.annotated else None
        for index, frame in enumerate(tqdm(iter_frames(args.video), desc=args.tracker, unit="frame")):
            result = tracker.init(frame, args.box) if index == 0 else tracker.track(frame)
            records.append(result_record(result))
            if writer is not None:
                writer.write(frame, result)
    if not records:
        raise ValueError(f"{args.video} holds no frames")
    seconds = time.perf_counter() - started
    meta = {
        "tracker": args.tracker,
        "package": str(args.package),
        "precision": package.meta.precision.value,
        "weights_sha256": package.meta.source.sha256,
        "video": str(args.video),
        "init_box": list(args.box),
        "frames": len(records),
        "fps": len(records) / seconds,
        "device": args.device,
        "torch_version": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "frames": records}, indent=1) + "\n")
    print(f"tracked {len(records)} frames at {meta['fps']:.1f} frames/s -> {args.out}")
    return 0
