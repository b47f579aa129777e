"""`siamstream track`: a package's tracker over a video, frame folder, camera or RTSP stream, for one or
several targets, written as result.json (and optionally an annotated video)."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siamstream.cli.library import non_negative_int, parse_box, positive_int
from siamstream.presets import PRESETS

if TYPE_CHECKING:  # importing siamstream.tracking registers the families' post-processors, loading OpenCV
    from siamstream.tracking.state import TrackResult

# Frame rate of the annotated video of a source that declares none (image folders, some cameras).
DEFAULT_FPS = 30.0


def add_parser(root: argparse._SubParsersAction) -> None:
    parser = root.add_parser(
        "track",
        help="track targets through a video, frame folder, camera or RTSP stream",
        description="The tracker is the package's. result.json lists, frame by frame, each target's box, "
        "score and status (frame START is the initial boxes, without a score).",
    )
    parser.add_argument("--package", required=True, type=Path, help="tracker package directory")
    parser.add_argument(
        "--tracker",
        help="check the package holds this tracker (a registered name, or a reference config name such "
        "as siamrpn_r50_l234_dwxcorr, which also applies that config's hyperparameters)",
    )
    parser.add_argument(
        "--video", required=True, help="video file, frame folder, camera index (0) or rtsp:// URL"
    )
    parser.add_argument(
        "--box",
        required=True,
        action="append",
        type=parse_box,
        help="initial box x,y,w,h (image px) in frame START; repeat for several targets",
    )
    parser.add_argument("--out", required=True, type=Path, help="result JSON to write")
    parser.add_argument(
        "--start", type=non_negative_int, default=0, help="index of the first frame tracked (default 0)"
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        help="track at most this many frames (required for a camera or stream, which has no end)",
    )
    parser.add_argument("--annotated", type=Path, help="also write an annotated .mp4")
    parser.add_argument(
        "--fps",
        type=positive_float,
        help=f"frame rate of the annotated video (default: the source's, else {DEFAULT_FPS:g})",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        metavar="NAME",
        help=f"hyperparameters of a reference config or benchmark: {', '.join(sorted(PRESETS))}",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        type=parse_setting,
        metavar="KEY=VALUE",
        help="set one hyperparameter of the tracker (after --preset), e.g. window_influence=0.3; repeatable",
    )
    parser.add_argument("--device", default="cpu", help="torch device of the model (cpu, cuda)")
    parser.set_defaults(run=run_track)


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def parse_setting(text: str) -> tuple[str, Any]:
    """`KEY=VALUE`; the value is read as JSON (0.3, true, null) where it is JSON, else kept as text."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def result_record(result: TrackResult) -> dict:
    """One frame of one target, in the layout of the reference tools."""
    return {"frame": result.frame_index, "bbox": list(result.bbox), "best_score": result.score}


def target_record(result: TrackResult, target: int, start: int) -> dict:
    """One frame of target number `target` in result.json: the frame's index in the source, and the
    status the service would report for it."""
    record = result_record(result)
    record["frame"] = start + result.frame_index
    record["target"] = target
    record["status"] = result.status.value
    return record


def run_track(args: argparse.Namespace) -> int:
    # Deferred: torch and OpenCV load when a video is tracked, not whenever the parser is built.
    import torch
    from tqdm import tqdm

    from siamstream.annotate import AnnotatedVideoWriter
    from siamstream.data.frames import open_source
    from siamstream.package import read_package
    from siamstream.presets import resolve_tracker, with_hyper, with_preset
    from siamstream.runner import PackageRunner
    from siamstream.tracking.multi_target import MultiTargetTracker

    package = read_package(args.package)
    config = package.config
    if args.tracker is not None:
        tracker_name, config_preset = resolve_tracker(args.tracker)
        if tracker_name != package.meta.tracker:
            named = "" if tracker_name == args.tracker else f" ({args.tracker})"
            raise ValueError(
                f"package {args.package} holds {package.meta.tracker!r}, not {tracker_name!r}{named}"
            )
        if config_preset is not None:
            config = with_preset(config, config_preset.name)
    if args.preset is not None:
        config = with_preset(config, args.preset)
    settings = dict(args.settings)
    if settings:
        config = with_hyper(config, settings)
    tracker = MultiTargetTracker(config, PackageRunner(package, args.device))
    records: list[dict] = []
    frame_count = 0
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open_source(args.video))
        if source.live and args.max_frames is None:
            raise ValueError(f"{source.name} is live and has no end: give --max-frames")
        fps = args.fps or source.fps or DEFAULT_FPS
        writer = stack.enter_context(AnnotatedVideoWriter(args.annotated, fps)) if args.annotated else None
        frames = itertools.islice(source.frames(args.start), args.max_frames)
        started = time.perf_counter()
        for frame in tqdm(frames, desc=config.name, unit="frame", total=args.max_frames):
            results = tracker.track(frame) if frame_count else tracker.init(frame, args.box)
            records += [target_record(result, target, args.start) for target, result in enumerate(results)]
            if writer is not None:
                writer.write_targets(frame, results, args.start + frame_count)
            frame_count += 1
        seconds = time.perf_counter() - started
    if not frame_count:
        raise ValueError(f"{source.name} holds no frame at index {args.start}")
    meta = {
        "tracker": config.name,
        "package": str(args.package),
        "precision": package.meta.precision.value,
        "weights_sha256": package.meta.source.sha256,
        "video": source.name,
        "start": args.start,
        # `init_box` as `siamstream client track` writes it, for readers of one-target files.
        **({"init_box": list(args.box[0])} if len(args.box) == 1 else {}),
        "init_boxes": [list(box) for box in args.box],
        "targets": len(args.box),
        "frames": frame_count,
        "fps": frame_count / seconds,
        "source_fps": source.fps,
        "annotated_fps": fps if args.annotated else None,
        "preset": args.preset,
        "settings": settings,
        "hyper": config.hyper.model_dump(mode="json"),
        "device": args.device,
        "torch_version": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "frames": records}, indent=1) + "\n")
    print(
        f"tracked {len(args.box)} target(s) over {frame_count} frames at {meta['fps']:.1f} frames/s "
        f"-> {args.out}"
    )
    return 0
