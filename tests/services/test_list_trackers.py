"""ListTrackers on a real loopback server, `siamstream client trackers`, and `client track` choosing and
reporting its tracker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cv2
import grpc
import pytest

from siamstream.cli.main import build_parser
from siamstream.config import Precision, TrackerConfig, merge_fields
from siamstream.registry import get_config
from siamstream_services.client.client import TrackingClient
from siamstream_services.client.results import HostedTracker
from siamstream_services.convert import tracker_infos
from siamstream_services.core.sessions import ServedTracker
from siamstream_services.demo.packages import DEMO_PACKAGE
from siamstream_services.settings import TritonInference
from siamstream_services.v1 import tracking_pb2 as pb
from tests.services.session_fixtures import (
    API_KEY_A,
    INIT_BOX,
    TRACKER,
    auth,
    export_test_package,
    moving_target_frames,
    running_service,
    status_of,
)

# The trained demo package's weight file, as its model card records it.
DEMO_WEIGHTS_SHA256 = "da87e02abd8585cdf23abfce7be1048a17da8eae2e5ff15ccdf2410ea9c07d3d"


@pytest.fixture(scope="module")
def two_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """siamrpn_alex with random weights, and the trained siamfc_alexnet demo package."""
    package_dir = tmp_path_factory.mktemp("packages")
    export_test_package(package_dir)
    (package_dir / "siamfc_alexnet").symlink_to(DEMO_PACKAGE, target_is_directory=True)
    return package_dir


def client(*arguments: str) -> int:
    """`siamstream client ...` as the console script runs it (its own event loop, here in a thread)."""
    args = build_parser().parse_args(["client", *arguments])
    return args.run(args)


async def test_list_trackers_describes_the_loaded_packages_and_needs_a_key(two_packages: Path) -> None:
    async with running_service(two_packages) as service:
        code, _ = await status_of(service.stub.ListTrackers(pb.ListTrackersRequest()))
        answer = await service.stub.ListTrackers(pb.ListTrackersRequest(), metadata=auth(API_KEY_A))

    assert code == grpc.StatusCode.UNAUTHENTICATED
    siamfc, alex = answer.trackers  # ordered by name
    assert (alex.name, alex.family, alex.template_size, alex.search_size) == (
        "siamrpn_alex",
        "siamrpn",
        127,
        287,
    )
    assert (alex.precision, alex.inference_backend, alex.weights_sha256) == ("fp32", "embedded", "")
    assert not (alex.template_update or alex.adaptive_region or alex.long_term)
    assert list(alex.search_sides) == [287] and list(siamfc.search_sides) == [255]
    assert (siamfc.name, siamfc.family, siamfc.template_size, siamfc.search_size) == (
        "siamfc_alexnet",
        "siamfc",
        127,
        255,
    )
    assert siamfc.weights_sha256 == DEMO_WEIGHTS_SHA256
    assert siamfc.description.startswith("SiamFC AlexNet")
    assert len(alex.package_id) == 16 and alex.package_id != siamfc.package_id


async def test_client_trackers_command_and_method(
    two_packages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_service(two_packages) as service:
        server = f"127.0.0.1:{service.port}"
        async with TrackingClient(server, api_key=API_KEY_A) as tracking:
            hosted = await tracking.trackers()
        listed = await asyncio.to_thread(client, "trackers", "--server", server, "--api-key", API_KEY_A)
        text = capsys.readouterr().out
        as_json = await asyncio.to_thread(
            client, "trackers", "--server", server, "--api-key", API_KEY_A, "--json"
        )
        document = json.loads(capsys.readouterr().out)
        refused = await asyncio.to_thread(client, "trackers", "--server", server)

    assert [tracker.name for tracker in hosted] == ["siamfc_alexnet", "siamrpn_alex"]
    assert hosted[0].weights_sha256 == DEMO_WEIGHTS_SHA256 and hosted[0].search_size == 255
    assert listed == 0 and as_json == 0
    siamfc_line, alex_line = text.splitlines()
    assert alex_line.split()[:6] == ["siamrpn_alex", "siamrpn", "z127", "x287", "fp32", "embedded"]
    assert alex_line.endswith("RANDOM weights")
    assert siamfc_line.split()[:4] == ["siamfc_alexnet", "siamfc", "z127", "x255"]
    assert siamfc_line.endswith(f"sha256 {DEMO_WEIGHTS_SHA256[:12]}")
    assert [entry["name"] for entry in document] == ["siamfc_alexnet", "siamrpn_alex"]
    assert document[0]["weights_sha256"] == DEMO_WEIGHTS_SHA256 and document[1]["precision"] == "fp32"
    assert (document[1]["long_term"], document[1]["search_sides"]) == (False, [287])
    assert refused == 1
    assert "siamstream client trackers: UNAUTHENTICATED" in capsys.readouterr().err


def test_tracker_info_tells_the_options_the_package_was_exported_with() -> None:
    # siamrpn_alex (287 crops, stride 8) exported with the adaptive region (3 steps of 64 by default) and
    # long-term mode (831 lost crops); the template update stays off.
    changes = {"search": {"adaptive_region": True}, "long_term": {"enabled": True}}
    config = TrackerConfig.model_validate(merge_fields(get_config(TRACKER).model_dump(), changes))
    served = ServedTracker(config, "0123456789abcdef", precision=Precision.FP32, weights_sha256="")

    (info,) = tracker_infos({TRACKER: served}, TritonInference(address="models:8001"))

    assert (info.adaptive_region, info.long_term, info.template_update) == (True, True, False)
    assert list(info.search_sides) == [287, 351, 415, 479, 831]
    assert (info.search_size, info.inference_backend) == (287, "triton")
    hosted = HostedTracker.from_message(info)
    assert (hosted.adaptive_region, hosted.long_term) == (True, True)
    assert hosted.search_sides == (287, 351, 415, 479, 831)


def frame_folder(folder: Path, count: int) -> Path:
    folder.mkdir()
    for index, frame in enumerate(moving_target_frames(count)):
        assert cv2.imwrite(str(folder / f"{index:04d}.png"), frame)
    return folder


async def test_client_track_runs_and_reports_the_only_hosted_tracker(
    tmp_path: Path, two_packages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = frame_folder(tmp_path / "frames", 3)
    box = ",".join(str(value) for value in INIT_BOX)
    out = tmp_path / "result.json"
    common = ("track", "--video", str(video), "--box", box, "--api-key", API_KEY_A)
    async with running_service(two_packages, tracker_packages=[TRACKER]) as service:
        server = f"127.0.0.1:{service.port}"
        status = await asyncio.to_thread(client, *common, "--server", server, "--out", str(out))
    async with running_service(two_packages) as service:
        server_of_two = f"127.0.0.1:{service.port}"
        with pytest.raises(ValueError, match="hosts siamfc_alexnet, siamrpn_alex: choose one with --tracker"):
            await asyncio.to_thread(
                client, *common, "--server", server_of_two, "--out", str(tmp_path / "refused.json")
            )

    assert status == 0
    assert json.loads(out.read_text())["meta"]["tracker"] == "siamrpn_alex"
    assert f"tracked 3 frames with siamrpn_alex through {server}" in capsys.readouterr().out
    assert not (tmp_path / "refused.json").exists()
