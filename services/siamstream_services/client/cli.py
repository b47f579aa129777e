"""`siamstream client track` streams a video through a running service and writes result.json;
`siamstream client trackers` lists the trackers the service hosts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siamstream.cli.library import existing_path, parse_box
from siamstream.cli.main import CommandGroups

if TYPE_CHECKING:
    from siamstream_services.client.client import TrackingClient


def add_commands(groups: CommandGroups) -> None:
    client = groups.root.add_parser("client", help="call a running tracking service")
    commands = client.add_subparsers(dest="client_command", required=True, metavar="COMMAND")
    track = commands.add_parser(
        "track",
        help="track one target through a video or frame folder on the service",
        description="Writes result.json in the layout of `siamstream track`, plus per-frame timings.",
    )
    track.add_argument("--video", required=True, type=existing_path, help="video file or frame folder")
    track.add_argument("--box", required=True, type=parse_box, help="initial box x,y,w,h (image px)")
    track.add_argument("--out", required=True, type=Path, help="result JSON to write")
    track.add_argument(
        "--tracker", help="registered tracker to run (default: the service's, when it hosts only one)"
    )
    track.add_argument("--annotated", type=Path, help="also write an annotated .mp4")
    add_connection_arguments(track)
    track.add_argument("--image-format", choices=["jpeg", "png"], default="jpeg", help="how frames travel")
    track.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality 0-100")
    track.set_defaults(run=run_client_track)

    trackers = commands.add_parser(
        "trackers",
        help="list the trackers the service hosts",
        description="One line per tracker: name, family, template and search crop sides, precision, "
        "inference backend, package id and weights (random or the weight file's SHA-256).",
    )
    add_connection_arguments(trackers)
    trackers.add_argument("--json", action="store_true", help="print the trackers as JSON")
    trackers.set_defaults(run=run_client_trackers)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", required=True, help="HOST:PORT of the service")
    parser.add_argument("--api-key", help="API key, sent as 'authorization: Bearer KEY'")
    parser.add_argument("--tls-root-cert", type=existing_path, help="PEM CA that signed the server (TLS)")


def run_client_track(args: argparse.Namespace) -> int:
    return _run_call("track", _track, args)


def run_client_trackers(args: argparse.Namespace) -> int:
    return _run_call("trackers", _trackers, args)


def _run_call(
    command: str, call: Callable[[argparse.Namespace], Coroutine[None, None, int]], args: argparse.Namespace
) -> int:
    # grpc first: without the `service` extra this raises before the call's coroutine exists (one made
    # and never awaited would print a RuntimeWarning after the extras message).
    from grpc import aio

    try:
        return asyncio.run(call(args))
    except aio.AioRpcError as error:
        print(f"siamstream client {command}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1


async def _trackers(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        hosted = await client.trackers()
    if args.json:
        print(json.dumps([dataclasses.asdict(tracker) for tracker in hosted], indent=2))
        return 0
    for tracker in hosted:
        weights = f"sha256 {tracker.weights_sha256[:12]}" if tracker.weights_sha256 else "RANDOM weights"
        print(
            f"{tracker.name:24s} {tracker.family:8s} z{tracker.template_size} x{tracker.search_size} "
            f"{tracker.precision} {tracker.inference_backend} package {tracker.package_id} {weights}"
        )
    return 0


def _client(args: argparse.Namespace, **options: Any) -> TrackingClient:
    # Deferred: grpc and the stubs load only when a command runs.
    from siamstream_services.client.client import TrackingClient

    return TrackingClient(
        args.server,
        api_key=args.api_key,
        root_certificates=args.tls_root_cert.read_bytes() if args.tls_root_cert else None,
        **options,
    )


async def _chosen_tracker(client: TrackingClient, asked: str | None) -> str:
    """`asked`, or the one tracker the service hosts; a ValueError names them when it hosts several."""
    if asked is not None:
        return asked
    import grpc

    try:
        names = [tracker.name for tracker in await client.trackers()]
    except grpc.aio.AioRpcError as error:
        if error.code() is not grpc.StatusCode.UNIMPLEMENTED:
            raise
        raise ValueError(
            "the service does not list its trackers (an older release): choose one with --tracker"
        ) from None
    if len(names) != 1:
        raise ValueError(f"the service hosts {', '.join(names) or 'no tracker'}: choose one with --tracker")
    return names[0]


async def _track(args: argparse.Namespace) -> int:
    # Deferred: grpc, OpenCV and the stubs load only when the command runs.
    from siamstream.annotate import DEFAULT_FPS, AnnotatedVideoWriter
    from siamstream.data.frames import open_source
    from siamstream_services.client.frames import ImageFormat
    from siamstream_services.client.result_file import frame_record, write_result_file

    client = _client(args, image_format=ImageFormat(args.image_format), jpeg_quality=args.jpeg_quality)
    records, session_id = [], ""
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open_source(str(args.video)))
        frames = source.frames()
        first = next(frames, None)  # a video that cannot be read fails here, before any call
        if first is None:
            raise ValueError(f"{source.name} holds no frames")
        frames = itertools.chain([first], frames)
        async with client:
            await client.check_access()  # a bad key or address fails here with its real status
            tracker = await _chosen_tracker(client, args.tracker)
            writer = None
            if args.annotated:
                # At the source's frame rate, as `siamstream track` writes it.
                fps = source.fps or DEFAULT_FPS
                writer = stack.enter_context(AnnotatedVideoWriter(args.annotated, fps))
            started = time.perf_counter()
            async for answer in client.track_stream(frames, args.box, tracker):
                session_id = answer.session_id
                records.append(frame_record(answer.result, args.box))
                if writer is not None:
                    writer.write(answer.frame, answer.result.track_result())
    seconds = time.perf_counter() - started
    meta = {
        "tracker": tracker,
        "server": args.server,
        "session_id": session_id,
        "video": source.name,
        "init_box": list(args.box),
        "frames": len(records),
        "fps": len(records) / seconds,
        "image_format": args.image_format,
        "jpeg_quality": args.jpeg_quality if args.image_format == "jpeg" else None,
    }
    write_result_file(args.out, meta, records)
    print(
        f"tracked {len(records)} frames with {tracker} through {args.server} at {meta['fps']:.1f} frames/s "
        f"-> {args.out}"
    )
    return 0
