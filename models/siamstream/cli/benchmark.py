"""`siamstream bench tracker`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from siamstream.cli.library import existing_path


def add_parser(bench: argparse._SubParsersAction) -> None:
    parser = bench.add_parser("tracker", help="per-stage step timings, batching, bf16 and eager ratios")
    parser.add_argument("--tracker", required=True, help="registry name")
    parser.add_argument("--frames", type=int, default=30, help="frames tracked for the step timings")
    parser.add_argument("--package", type=existing_path, help="time this package (default: random weights)")
    parser.add_argument(
        "--bf16-frames", type=int, default=0, help="also time N frames in bf16 (slow without native bf16)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from siamstream.benchmark.tracker import print_report, run
    from siamstream.registry import get_config

    if args.frames < 2:
        raise ValueError("--frames must be at least 2")
    package = Path(args.package) if args.package else None
    report = run(get_config(args.tracker), args.frames, package, bf16_frames=args.bf16_frames)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0
