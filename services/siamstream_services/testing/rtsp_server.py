"""An RTSP test camera: GstRtspServer serving a generated scene with known ground truth, H.264 over RTP.

Run with Debian's `/usr/bin/python3` (its GStreamer bindings do not import from a venv; install them with
`scripts/install_rtsp.sh`):

    /usr/bin/python3 services/siamstream_services/testing/rtsp_server.py --port 8554 [--fps 30 ...]

The stream is `rtsp://127.0.0.1:PORT/scene`, bound to loopback only, TCP interleaving allowed. Every client
shares one media (one encoder); frame 0 is the first frame after the media starts. Once serving, the
script prints `READY <port>` on stdout, and with `--timeline FILE` it appends `<index> <unix time>` for
each frame as it enters the encoder, so a receiver can measure latency.

The scene functions below use the standard library only, so that this script runs under the system Python
(no numpy) and the venv's receivers (`rtsp_camera.decode_index`) read the same layout:
- a blocky background (8x8-pixel blocks, so H.264 keeps it sharp at a moderate bitrate);
- a textured square target moving along a bouncing path (`target_box`);
- the frame index as INDEX_BITS black/white cells along the top (`INDEX_CELL` pixels square each),
  most significant bit first, which the target never covers.
"""

from __future__ import annotations

import argparse
import sys
import time

TARGET_SIDE = 48
INDEX_BITS = 20
INDEX_CELL = 12
# The target stays below the index strip and inside the frame by this many pixels.
MARGIN = 24
STEP_X = 3
STEP_Y = 2
MOUNT_POINT = "/scene"


def _bounce(travel: int, span: int) -> int:
    """Position after moving `travel` pixels back and forth on [0, span]."""
    if span <= 0:
        return 0
    phase = travel % (2 * span)
    return phase if phase <= span else 2 * span - phase


def target_box(index: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Ground truth of frame `index`: the target as `(x, y, w, h)` in image pixels (top-left, size)."""
    x = MARGIN + _bounce(STEP_X * index, width - 2 * MARGIN - TARGET_SIDE)
    y = MARGIN + _bounce(STEP_Y * index, height - 2 * MARGIN - TARGET_SIDE)
    return x, y, TARGET_SIDE, TARGET_SIDE


def background_bytes(width: int, height: int) -> bytes:
    """The background as BGR bytes, rows top to bottom."""
    rows = []
    for y in range(height):
        row = bytearray(3 * width)
        for x in range(width):
            block = (x // 8) * 37 + (y // 8) * 91
            for channel in range(3):
                row[3 * x + channel] = 40 + (block * (53 + 17 * channel)) % 120
        rows.append(bytes(row))
    return b"".join(rows)


def target_rows() -> list[bytes]:
    """The target's texture as BGR rows: bright 6x6-pixel blocks, unlike the darker background."""
    rows = []
    for y in range(TARGET_SIDE):
        row = bytearray(3 * TARGET_SIDE)
        for x in range(TARGET_SIDE):
            block = (x // 6) * 7 + (y // 6) * 13
            for channel in range(3):
                row[3 * x + channel] = 150 + (block * (29 + 41 * channel)) % 106
        rows.append(bytes(row))
    return rows


def render_frame(index: int, width: int, height: int, background: bytes, target: list[bytes]) -> bytes:
    """Frame `index` of the scene as BGR bytes (`background`/`target` from the functions above)."""
    frame = bytearray(background)
    x, y, side, _ = target_box(index, width, height)
    for row in range(side):
        start = 3 * ((y + row) * width + x)
        frame[start : start + 3 * side] = target[row]
    cells = b"".join(
        (b"\xff" if (index >> (INDEX_BITS - 1 - bit)) & 1 else b"\x00") * (3 * INDEX_CELL)
        for bit in range(INDEX_BITS)
    )
    for row in range(INDEX_CELL):
        start = 3 * row * width
        frame[start : start + len(cells)] = cells
    return bytes(frame)


def _serve(args: argparse.Namespace) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    width, height, fps = args.width, args.height, args.fps
    background = background_bytes(width, height)
    target = target_rows()
    timeline = open(args.timeline, "a", buffering=1) if args.timeline else None  # noqa: SIM115

    factory = GstRtspServer.RTSPMediaFactory()
    # Low-latency H.264: no B-frames, a keyframe every second so a reconnecting client starts quickly,
    # SPS/PPS repeated in-band; a high bitrate keeps the decoded pixels close to the generated ones.
    factory.set_launch(
        f"( appsrc name=scene is-live=true do-timestamp=true format=time "
        f"caps=video/x-raw,format=BGR,width={width},height={height},framerate={fps}/1 "
        f"! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast bitrate={args.bitrate_kbps} "
        f"key-int-max={fps} bframes=0 "
        f"! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    pool = GstRtspServer.RTSPAddressPool()
    pool.add_range("127.0.0.1", "127.0.0.1", 50000, 60000, 0)
    factory.set_address_pool(pool)

    def on_configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        source = media.get_element().get_by_name("scene")
        state = {"index": 0}

        def push() -> bool:
            index = state["index"]
            buffer = Gst.Buffer.new_wrapped(render_frame(index, width, height, background, target))
            if timeline is not None:
                timeline.write(f"{index} {time.time():.6f}\n")
            state["index"] = index + 1
            # FLUSHING or EOS: the media was torn down (last client left); stop this timer.
            return source.emit("push-buffer", buffer) == Gst.FlowReturn.OK

        GLib.timeout_add(max(1, round(1000 / fps)), push)

    factory.connect("media-configure", on_configure)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(MOUNT_POINT, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"could not bind 127.0.0.1:{args.port}")
    print(f"READY {args.port}", flush=True)
    GLib.MainLoop().run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--width", type=int, default=320, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=240, help="frame height in pixels")
    parser.add_argument("--fps", type=int, default=30, help="frames per second")
    parser.add_argument("--bitrate-kbps", type=int, default=4000, help="H.264 bitrate")
    parser.add_argument("--timeline", help="append '<index> <unix time>' per frame to this file")
    args = parser.parse_args(argv)
    if args.width < INDEX_BITS * INDEX_CELL or args.height < 2 * MARGIN + TARGET_SIDE:
        parser.error(f"frames must be at least {INDEX_BITS * INDEX_CELL}x{2 * MARGIN + TARGET_SIDE}")
    _serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
