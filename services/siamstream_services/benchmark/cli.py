"""`siamstream bench service` (registered in the `siamstream.commands` group)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from siamstream.cli.library import existing_path
from siamstream.cli.main import CommandGroups


def parse_stream_counts(text: str) -> list[int]:
    """Parse `1,4,16` into positive stream counts."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"streams must be integers like 1,4,16, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"stream counts must be at least 1, got {text!r}")
    return counts


def add_commands(groups: CommandGroups) -> None:
    parser = groups.bench.add_parser(
        "service", help="PushFrame latency and throughput of the service at several stream counts"
    )
    parser.add_argument("--tracker", required=True, help="registry name")
    parser.add_argument("--backend", choices=["embedded", "triton"], default="embedded", help="inference")
    parser.add_argument(
        "--streams", type=parse_stream_counts, default=[1, 4, 16], help="concurrent sessions, e.g. 1,4,16"
    )
    parser.add_argument("--frames", type=int, default=30, help="timed frames per session of the stream runs")
    parser.add_argument(
        "--overhead-frames",
        type=int,
        default=100,
        help="pushes of one session timed for the service overhead",
    )
    parser.add_argument("--package", type=existing_path, help="time this package (default: random weights)")
    parser.add_argument(
        "--triton-venv", type=Path, default=Path(".triton-venv"), help="venv holding nvidia-pytriton"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run_bench_service)


def run_bench_service(args: argparse.Namespace) -> int:
    # Deferred: torch, grpc and the service load only when the command runs.
    from siamstream_services.demo.local_service import quiet_rpc_log

    from .service import print_report, run

    if args.frames < 1 or args.overhead_frames < 2:
        raise ValueError("--frames must be at least 1 and --overhead-frames at least 2")
    with quiet_rpc_log(not args.verbose):
        report = asyncio.run(
            run(
                args.tracker,
                args.backend,
                args.streams,
                args.frames,
                args.package,
                args.triton_venv,
                overhead_frames=args.overhead_frames,
            )
        )
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0
