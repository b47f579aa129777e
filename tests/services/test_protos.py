"""The gRPC API: committed stubs are current, messages round-trip, and the proto follows API conventions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor

from siamstream_services.v1 import tracking_pb2, tracking_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = REPO_ROOT / "services" / "siamstream_services" / "v1"


def test_committed_stubs_are_what_the_generator_produces(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "generate_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    fresh = {path.name: path.read_bytes() for path in (tmp_path / "siamstream_services" / "v1").iterdir()}
    committed = {path.name: path.read_bytes() for path in COMMITTED.glob("*_pb2*")}

    assert sorted(fresh) == ["tracking_pb2.py", "tracking_pb2.pyi", "tracking_pb2_grpc.py"]
    assert sorted(committed) == sorted(fresh), "stale or missing stubs: run scripts/generate_protos.py"
    for name, content in fresh.items():
        assert committed[name] == content, f"{name} is out of date: run scripts/generate_protos.py"


def test_stubs_keep_the_proto_names_and_live_under_the_service() -> None:
    # The file name is what reflection serves and what a client's own stubs register: a client generated
    # from protos/ the usual way shares one descriptor pool with ours only if the names agree.
    assert tracking_pb2.DESCRIPTOR.name == "siamstream/v1/tracking.proto"
    assert tracking_pb2.DESCRIPTOR.package == "siamstream.v1"
    assert (
        tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name
        == "siamstream.v1.TrackingService"
    )
    # Messages pickle and print under the module they are imported from.
    assert tracking_pb2.PushFrameRequest.__module__ == "siamstream_services.v1.tracking_pb2"
    assert tracking_pb2_grpc.TrackingServiceStub.__module__ == "siamstream_services.v1.tracking_pb2_grpc"


def test_push_frame_request_round_trips() -> None:
    request = tracking_pb2.PushFrameRequest(
        session_id="s-1",
        frame=tracking_pb2.Frame(
            raw=tracking_pb2.RawImage(
                data=bytes(range(6)) * 2, width=2, height=2, pixel_format=tracking_pb2.PIXEL_FORMAT_BGR8
            ),
            client_frame_number=2**64 - 1,
        ),
    )
    request.frame.capture_time.FromMilliseconds(1_700_000_000_123)

    parsed = tracking_pb2.PushFrameRequest.FromString(request.SerializeToString())

    assert parsed == request
    assert parsed.frame.WhichOneof("image") == "raw"
    assert parsed.frame.raw.data == bytes(range(6)) * 2
    assert parsed.frame.client_frame_number == 2**64 - 1
    assert parsed.frame.capture_time.ToMilliseconds() == 1_700_000_000_123


def test_unset_options_are_distinguishable_from_zero() -> None:
    options = tracking_pb2.TrackerOptions(window_influence=0.0, template_update=False)

    parsed = tracking_pb2.TrackerOptions.FromString(options.SerializeToString())

    assert parsed.HasField("window_influence") and parsed.HasField("template_update")
    assert not parsed.HasField("penalty_k") and not parsed.HasField("lost_after_frames")


def test_track_stream_messages_carry_start_or_frame() -> None:
    start = tracking_pb2.TrackRequest(
        start=tracking_pb2.StartTrackRequest(
            tracker="siamrpn_r50",
            frame=tracking_pb2.Frame(encoded=b"\xff\xd8\xff"),
            box=tracking_pb2.Box(x=10.5, y=20.0, width=30.0, height=40.0),
        )
    )
    frame = tracking_pb2.TrackRequest(frame=tracking_pb2.Frame(encoded=b"\x89PNG"))

    assert tracking_pb2.TrackRequest.FromString(start.SerializeToString()).WhichOneof("request") == "start"
    assert tracking_pb2.TrackRequest.FromString(frame.SerializeToString()).WhichOneof("request") == "frame"


def test_every_enum_starts_with_its_unspecified_zero_value() -> None:
    for enum in tracking_pb2.DESCRIPTOR.enum_types_by_name.values():
        prefix = "".join(f"_{char}" if char.isupper() else char for char in enum.name).lstrip("_").upper()
        assert enum.values_by_number[0].name == f"{prefix}_UNSPECIFIED"
        assert all(value.name.startswith(f"{prefix}_") for value in enum.values)


def test_service_methods_and_streaming() -> None:
    service = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"]
    methods = {method.name: (method.client_streaming, method.server_streaming) for method in service.methods}

    assert methods == {
        "StartTrack": (False, False),
        "PushFrame": (False, False),
        "StopTrack": (False, False),
        "GetTrack": (False, False),
        "ListTracks": (False, False),
        "ListTrackers": (False, False),
        "Track": (True, True),
        "AttachCamera": (False, False),
        "DetachCamera": (False, False),
        "ListCameras": (False, False),
        "WatchTrack": (False, True),
    }
    assert hasattr(tracking_pb2_grpc, "TrackingServiceServicer")
    assert hasattr(tracking_pb2_grpc, "add_TrackingServiceServicer_to_server")


def test_status_values_and_stage_timings() -> None:
    status = tracking_pb2.DESCRIPTOR.enum_types_by_name["TrackStatus"]
    assert [value.name for value in status.values] == [
        "TRACK_STATUS_UNSPECIFIED",
        "TRACK_STATUS_TRACKING",
        "TRACK_STATUS_UNCERTAIN",
        "TRACK_STATUS_LOST",
    ]
    timings = tracking_pb2.StageTimings.DESCRIPTOR
    assert all(field.type == descriptor.FieldDescriptor.TYPE_FLOAT for field in timings.fields)
    assert [field.name for field in timings.fields] == [
        "decode_ms",
        "crop_ms",
        "inference_ms",
        "postprocess_ms",
        "store_ms",
        "total_ms",
    ]
