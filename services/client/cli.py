"""`siamstream client track`: stream a video through a running service and write result.json."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import time
from pathlib import Path

from siamstream.cli.library import existing_path, parse_box
from siamstream.cli.main import CommandGroups


def add_commands(groups: CommandGroups) -> None:
    client = groups.root.add_parser("client", help="call a running tracking service")
    commands = client.add_subparsers(dest="client_command", required=True, metavar="COMMAND")
    track = commands.add_parser(
        "track",
        help="track one target through a video or frame folder on the service",
        description="Writes result.json in the layout of `siamstream track`, plus per-frame status "
        "and timings.",
    )
    track.add_argument("--video", required=True, type=existing_path, help="video file or frame folder")
    track.add_argument("--box", required=True, type=parse_box, help="initial box x,y,w,h (image px)")
    track.add_argument("--server", required=True, help="HOST:PORT of the service")
    track.add_argument("--out", required=True, type=Path, help="result JSON to write")
    track.add_argument("--tracker", default="siamrpn_alex", help="registered tracker the service runs")
    track.add_argument("--annotated", type=Path, help="also write an annotated .mp4")
    track.add_argument("--api-key", help="API key, sent as 'authorization: Bearer KEY'")
    track.add_argument("--tls-root-cert", type=existing_path, help="PEM CA that signed the server (TLS)")
    track.add_argument("--image-format", choices=["jpeg", "png"], default="jpeg", help="how frames travel")
    track.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality 0-100")
    track.set_defaults(run=run_client_track)


def run_client_track(args: argparse.Namespace) -> int:
    from grpc import aio

    try:
        return asyncio.run(_track(args))
    except aio.AioRpcError as error:
        print(f"siamstream client track: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1


async def _track(args: argparse.Namespace) -> int:
    # Deferred: grpc, OpenCV and the stubs load only when the command runs.
    from siamstream.annotate import AnnotatedVideoWriter
    from siamstream.data.frames import iter_frames
    from siamstream_services.client.client import TrackingClient
    from siamstream_services.client.frames import ImageFormat
    from siamstream_services.client.result_file import frame_record, write_result_file

    client = TrackingClient(
        args.server,
        api_key=args.api_key,
        root_certificates=args.tls_root_cert.read_bytes() if args.tls_root_cert else None,
        image_format=ImageFormat(args.image_format),
        jpeg_quality=args.jpeg_quality,
    )
    frames = iter_frames(args.video)
    first = next(frames, None)  # a video that cannot be read fails here, before any call
    if first is None:
        raise ValueError(f"{args.video} holds no frames")
    frames = itertools.chain([first], frames)
    records, session_id = [], ""
    started = time.perf_counter()
    async with client:
        await client.check_access()  # a bad key or address fails here with its real status
        with contextlib.ExitStack() as stack:
            writer = stack.enter_context(AnnotatedVideoWriter(args.annotated)) if args.annotated else None
            async for answer in client.track_stream(frames, args.box, args.tracker):
                session_id = answer.session_id
                records.append(frame_record(answer.result, args.box))
                if writer is not None:
                    writer.write(answer.frame, answer.result.track_result())
    seconds = time.perf_counter() - started
    meta = {
        "tracker": args.tracker,
        "server": args.server,
        "session_id": session_id,
        "video": str(args.video),
        "init_box": list(args.box),
        "frames": len(records),
        "fps": len(records) / seconds,
        "image_format": args.image_format,
        "jpeg_quality": args.jpeg_quality if args.image_format == "jpeg" else None,
    }
    write_result_file(args.out, meta, records)
    print(f"tracked {len(records)} frames through {args.server} at {meta['fps']:.1f} frames/s -> {args.out}")
    return 0
