"""`siamstream client track` end to end: a frame folder streamed through a running service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from siamstream.cli.main import build_parser
from siamstream.package import read_package
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.session_fixtures import (
    API_KEY_A,
    INIT_BOX,
    TRACKER,
    export_test_package,
    moving_target_frames,
    running_service,
)

FRAMES = 4


def write_frame_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for index, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{index:04d}.png"), frame)
    return folder


def client_track(*arguments: str) -> int:
    """Run the command as the console script does (it runs its own event loop, here in a thread)."""
    args = build_parser().parse_args(["client", "track", *arguments])
    return args.run(args)


async def test_client_track_writes_the_offline_layout_and_boxes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export_test_package(tmp_path / "packages")
    frames = moving_target_frames(FRAMES)
    video = write_frame_folder(tmp_path / "frames", frames)
    package = read_package(tmp_path / "packages" / TRACKER)
    expected = OfflineTracker(package.config, PackageRunner(package)).track_sequence(frames, INIT_BOX)
    out, annotated = tmp_path / "out" / "result.json", tmp_path / "out" / "annotated.mp4"
    box = ",".join(str(value) for value in INIT_BOX)

    async with running_service(tmp_path / "packages") as service:
        server = f"127.0.0.1:{service.port}"
        common = ("--video", str(video), "--box", box, "--server", server, "--tracker", TRACKER)
        status = await asyncio.to_thread(
            client_track,
            *common,
            *("--out", str(out), "--annotated", str(annotated), "--api-key", API_KEY_A),
            *("--image-format", "png"),
        )
        refused = await asyncio.to_thread(
            client_track,
            *common,
            "--out",
            str(tmp_path / "refused.json"),
            "--api-key",
            "wrong-key-0123456789",
        )

    assert status == 0
    document = json.loads(out.read_text())
    records = document["frames"]
    assert [record["frame"] for record in records] == list(range(FRAMES))
    assert records[0]["bbox"] == list(INIT_BOX) and records[0]["best_score"] is None
    for record, want in zip(records[1:], expected[1:], strict=True):
        assert (
            record["bbox"] == np.asarray(want.bbox, dtype=np.float32).tolist()
        )  # PNG: the offline tracker's pixels
        assert record["best_score"] == pytest.approx(want.score, rel=1e-6)
        assert record["status"] == want.status.value
        assert record["round_trip_ms"] >= record["server_ms"]["total_ms"] > 0
    meta = document["meta"]
    assert meta["tracker"] == TRACKER and meta["frames"] == FRAMES and meta["server"] == server
    assert meta["init_box"] == list(INIT_BOX)
    capture = cv2.VideoCapture(str(annotated))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert capture.get(cv2.CAP_PROP_FPS) == 30.0  # a frame folder declares no rate: the default
    capture.release()
    assert refused == 1 and not (tmp_path / "refused.json").exists()
    assert "UNAUTHENTICATED: unknown API key" in capsys.readouterr().err


def test_client_track_refuses_an_empty_frame_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        client_track(
            *("--video", str(tmp_path / "empty"), "--box", "1,2,3,4", "--server", "127.0.0.1:9"),
            *("--out", str(tmp_path / "result.json")),
        )


class OlderReleaseServicer(pb_grpc.TrackingServiceServicer):
    """A service from before ListTrackers: it answers ListTracks, and UNIMPLEMENTED to ListTrackers (the
    generated base class's answer to every method it does not override)."""

    async def ListTracks(self, request: pb.ListTracksRequest, context: grpc.aio.ServicerContext):
        return pb.ListTracksResponse()


async def test_client_track_without_a_tracker_asks_for_one_when_the_service_cannot_list_them(
    tmp_path: Path,
) -> None:
    video = write_frame_folder(tmp_path / "frames", moving_target_frames(2))
    server = grpc.aio.server()
    pb_grpc.add_TrackingServiceServicer_to_server(OlderReleaseServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        with pytest.raises(ValueError, match=r"an older release\): choose one with --tracker"):
            await asyncio.to_thread(
                client_track,
                *("--video", str(video), "--box", "1,2,3,4", "--server", f"127.0.0.1:{port}"),
                *("--out", str(tmp_path / "result.json")),
            )
    finally:
        await server.stop(grace=None)
    assert not (tmp_path / "result.json").exists()
