"""`siamstream bench tracker`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from siamstream.benchmark.harness import MIN_REPEATS, MIN_WARMUP
from siamstream.cli.library import existing_path
from siamstream.cli.packaging import add_compile_argument


def add_parser(bench: argparse._SubParsersAction) -> None:
    parser = bench.add_parser(
        "tracker", help="per-stage step timings; batching, eager and bf16 compared side by side"
    )
    parser.add_argument("--tracker", required=True, help="registry name")
    parser.add_argument("--frames", type=int, default=30, help="frames whose steps are timed")
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed calls per arm of each comparison (arms alternate)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=MIN_WARMUP,
        help=f"untimed calls per arm, and untimed frames before the step timings (at least {MIN_WARMUP})",
    )
    parser.add_argument(
        "--batch-sizes",
        type=batch_sizes,
        default=(1, 4, 16),
        help="comma-separated template counts N: one search call over N templates against N single calls",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: torch's); 1 keeps a busy machine's scheduler out of the "
        "threads' barriers",
    )
    parser.add_argument("--package", type=existing_path, help="time this package (default: random weights)")
    parser.add_argument(
        "--no-bf16",
        dest="bf16",
        action="store_false",
        help="skip the bf16 comparison (it runs only where oneDNN supports bf16 on this CPU)",
    )
    add_compile_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run_bench)


def batch_sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(size) for size in text.split(","))
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got {text}")
    return sizes


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from siamstream.benchmark.tracker import print_report, run
    from siamstream.registry import get_config

    if args.frames < MIN_REPEATS:
        raise ValueError(f"--frames must be at least {MIN_REPEATS}")
    if args.repeats < MIN_REPEATS:
        raise ValueError(f"--repeats must be at least {MIN_REPEATS}")
    if args.warmup < MIN_WARMUP:
        raise ValueError(f"--warmup must be at least {MIN_WARMUP}: TorchScript optimises on a later call")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    package = Path(args.package) if args.package else None
    report = run(
        get_config(args.tracker),
        args.frames,
        package,
        repeats=args.repeats,
        warmup=args.warmup,
        batch_sizes=args.batch_sizes,
        bf16=args.bf16,
        compile_buckets=args.compile_buckets,
    )
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0
