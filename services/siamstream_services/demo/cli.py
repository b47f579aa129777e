"""`siamstream demo` (registered in the `siamstream.commands` group)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from siamstream.cli.library import existing_path, parse_box
from siamstream.cli.main import CommandGroups

DEFAULT_FRAMES = 100


def add_commands(groups: CommandGroups) -> None:
    parser = groups.root.add_parser(
        "demo",
        help="run the service on embedded defaults and stream a sequence through it",
        description="Starts the service in this process on a free 127.0.0.1 port (memory store, "
        "embedded TorchScript), tracks a generated sequence (default) or a video through it with the "
        "client, writes OUT/annotated.mp4, OUT/result.json and OUT/summary.json and stops the service.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--video", type=existing_path, help="video file or frame folder (needs --box)")
    parser.add_argument("--box", type=parse_box, help="initial box x,y,w,h of --video (image px)")
    parser.add_argument(
        "--package",
        type=existing_path,
        help="tracker package (default: $SIAMSTREAM_DEMO_PACKAGE, else the trained demo package beside the "
        "installed library, models/packages/demo)",
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="instead of a package, export the tracker with seeded random weights into OUT/package "
        "(speed only: the boxes and accuracy mean nothing)",
    )
    parser.add_argument("--tracker", help="registry name (default: the package's; siamrpn_alex)")
    parser.add_argument(
        "--frames",
        type=int,
        help=f"frames to track (generated sequence: default {DEFAULT_FRAMES}; video: default all)",
    )
    parser.set_defaults(run=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    # Deferred: torch, grpc and the service load only when the command runs.
    from .local_service import quiet_rpc_log
    from .packages import choose_package, random_package
    from .run import print_summary, run_demo
    from .source import synthetic_source, video_source

    if (args.video is None) != (args.box is None):
        raise ValueError("--video and --box go together")
    if args.frames is not None and args.frames < 2:
        raise ValueError("--frames must be at least 2")
    if args.random_weights and args.package is not None:
        raise ValueError("--random-weights and --package exclude each other")
    if args.random_weights:
        package = random_package(args.tracker, args.out / "package")
    else:
        package = choose_package(args.package, args.tracker)
    if args.video is None:
        source = synthetic_source(args.frames or DEFAULT_FRAMES)
    else:
        source = video_source(args.video, args.box, args.frames)
    with quiet_rpc_log(not args.verbose):
        summary = asyncio.run(run_demo(args.out, source, package))
    print_summary(summary, args.out)
    return 0
