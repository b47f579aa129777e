"""Tracking quality on /metrics: frames by status, scores, template updates and re-detections, scraped
from a real service (loopback gRPC, embedded backend) after frames whose outcome is known.

The demo package (siamfc_alexnet trained on synthetic targets) scores about 0.9997 on its target and
about 0.57 on the background alone, so a session with TRACKING from 0.95, failed frames below 0.9 and
LOST after 2 of them goes: target, target gone (UNCERTAIN, LOST, LOST), target back (TRACKING, a
re-detection). A siamrpn_alex package with the template update at gate 0 updates on every frame.
"""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from siamstream.config import TemplateUpdateConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.registry import get_config
from siamstream_services.testing.ports import free_port
from siamstream_services.v1 import tracking_pb2 as pb
from tests.services.session_fixtures import (
    API_KEY_A,
    INIT_BOX,
    TRACKER,
    Service,
    auth,
    box_message,
    export_test_package,
    moving_target_frames,
    png_frame,
    running_service,
)

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
]

KEY = auth(API_KEY_A)
DEMO_PACKAGE = Path(__file__).resolve().parents[2] / "models" / "packages" / "demo"
DEMO = "siamfc_alexnet"
STATUS_OPTIONS = pb.TrackerOptions(tracking_threshold=0.95, lost_threshold=0.9, lost_after_frames=2)


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo package, and siamrpn_alex updating its template on every frame."""
    directory = tmp_path_factory.mktemp("packages")
    (directory / DEMO).symlink_to(DEMO_PACKAGE, target_is_directory=True)
    update = TemplateUpdateConfig(enabled=True, rate=0.3, gate=0.0)
    export_test_package(directory, get_config(TRACKER).model_copy(update={"template_update": update}))
    return directory


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(package_dir: Path):
    async with running_service(package_dir, metrics_port=free_port()) as running:
        yield running


async def push_all(
    service: Service, tracker: str, frames: list[np.ndarray], box, options
) -> list[pb.TrackResult]:
    request = pb.StartTrackRequest(
        tracker=tracker, frame=png_frame(frames[0], 0), box=box_message(box), options=options
    )
    started = await service.stub.StartTrack(request, metadata=KEY)
    results = []
    for number, frame in enumerate(frames[1:], start=1):
        push = pb.PushFrameRequest(session_id=started.session_id, frame=png_frame(frame, number))
        results.append((await service.stub.PushFrame(push, metadata=KEY)).result)
    return results


async def scrape(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{service.server.settings.metrics_port}/metrics"
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_statuses_scores_redetections_and_template_updates(service: Service) -> None:
    sequence = generate_sequence(SequenceSpec(seed=0, width=320, height=240, length=3))
    shown, gone = sequence.frame(0), sequence.background
    demo_frames = [shown, shown, gone, gone, gone, shown, shown]
    demo = await push_all(service, DEMO, demo_frames, tuple(sequence.init_box), STATUS_OPTIONS)
    assert [r.status for r in demo] == [
        pb.TRACK_STATUS_TRACKING,
        pb.TRACK_STATUS_UNCERTAIN,
        pb.TRACK_STATUS_LOST,
        pb.TRACK_STATUS_LOST,
        pb.TRACK_STATUS_TRACKING,
        pb.TRACK_STATUS_TRACKING,
    ]
    updating = await push_all(service, TRACKER, moving_target_frames(4), INIT_BOX, pb.TrackerOptions())

    metrics = await scrape(service)

    def value(name: str, **labels: str) -> float | None:
        return metrics.get((name, tuple(sorted(labels.items()))))

    frames = "siamstream_track_frames_total"
    assert value(frames, tracker=DEMO, status="tracking") == 3
    assert value(frames, tracker=DEMO, status="uncertain") == 1
    assert value(frames, tracker=DEMO, status="lost") == 2
    assert value("siamstream_redetections_total", tracker=DEMO) == 1
    # The three frames without the target scored below 0.9, the three with it at 0.99 or more.
    score = "siamstream_track_score_bucket"
    assert value(score, tracker=DEMO, le="0.9") == 3
    assert value(score, tracker=DEMO, le="0.99") == 3
    assert value(score, tracker=DEMO, le="1.0") == 6
    assert value(score, tracker=DEMO, le="+Inf") == 6
    assert value("siamstream_track_score_count", tracker=DEMO) == 6
    assert value("siamstream_template_updates_total", tracker=DEMO) is None  # the package has no update

    assert value("siamstream_template_updates_total", tracker=TRACKER) == len(updating) == 3
    statuses = ("tracking", "uncertain", "lost")
    assert sum(value(frames, tracker=TRACKER, status=status) or 0 for status in statuses) == 3
    assert value("siamstream_redetections_total", tracker=TRACKER) is None
    # Start frames are in siamstream_frames but not among the tracked frames.
    assert value("siamstream_frames_total", tracker=DEMO, code="OK") == 7
