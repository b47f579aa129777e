"""Long-term mode through the session service, on the embedded backend and on a real tritonserver.

The siamrpn_alex package here is exported with seeded random weights and long-term mode (lost crops of
351 px, two a frame). Sessions ask TRACKING from a score of 1.0 and LOST after one frame below 1.0, which
no frame reaches: the track is LOST after frame 1 and every later frame is a lost search that finds
nothing, stepping through the grid of the 320 x 240 frame (3 x 2 tiles of 351 px at the target's scale)
two tiles a frame. The service must give exactly the offline tracker's boxes and state record, the
grid cursor included, through the batched lost crops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

from siamstream.config import LongTermConfig, StatusConfig, TrackerConfig
from siamstream.package import read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackResult
from siamstream_services.core.state import SessionState
from siamstream_services.inference.triton_repository import search_model_name, sized_model_name
from siamstream_services.inference.triton_server import TritonServer
from siamstream_services.v1 import tracking_pb2 as pb
from tests.recording_runner import RecordingRunner
from tests.services.replica_fixtures import KEY, assert_offline_results, serving_replica, start_request, track
from tests.services.session_fixtures import (
    INIT_BOX,
    TRACKER,
    Service,
    export_test_package,
    moving_target_frames,
    running_service,
    status_of,
)
from tests.services.triton_fixtures import cpu_test_triton, inference_counts, triton_missing_reason

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
]

FRAME_COUNT = 6
LOST_SIDE = 351
# Options under which every tracked frame fails: LOST from frame 1 on, never found again.
NEVER_CONFIDENT: dict[str, Any] = {"tracking_threshold": 1.0, "lost_threshold": 1.0, "lost_after_frames": 1}
# NEVER_CONFIDENT as a session record stores it.
NEVER_CONFIDENT_RECORD = '{"tracking_threshold":1.0,"lost_threshold":1.0,"lost_after_frames":1}'
TRITON_MISSING = triton_missing_reason()


def long_term_config() -> TrackerConfig:
    return get_config(TRACKER).model_copy(
        update={"long_term": LongTermConfig(enabled=True, lost_instance_size=LOST_SIDE, tiles_per_frame=2)}
    )


def offline(package_dir: Path, frames: list[np.ndarray]) -> tuple[OfflineTracker, RecordingRunner, list]:
    """The offline tracker of the package's config under NEVER_CONFIDENT, over `frames`."""
    package = read_package(package_dir / TRACKER)
    config = package.config.model_copy(
        update={"status": StatusConfig(tracking_above=1.0, lost_below=1.0, lost_after=1)}
    )
    runner = RecordingRunner(PackageRunner(package))
    tracker = OfflineTracker(config, runner)
    return tracker, runner, tracker.track_sequence(frames, INIT_BOX)


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("packages")
    export_test_package(directory, long_term_config())
    return directory


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_target_frames(FRAME_COUNT)


@pytest.fixture(scope="module")
def expected(package_dir: Path, frames: list[np.ndarray]) -> tuple[OfflineTracker, list[TrackResult]]:
    tracker, runner, results = offline(package_dir, frames)
    # Frame 1 on the normal crop, frames 2-5 two lost crops each.
    assert runner.calls["search"] == [(1, 287)] + [(2, LOST_SIDE)] * (FRAME_COUNT - 2)
    assert [r.status.value for r in results[1:]] == ["lost"] * (FRAME_COUNT - 1)
    # The box stays where the track was lost; the cursor went round the six tiles, 2 a frame: 8 % 6.
    assert len({r.bbox for r in results[1:]}) == 1
    assert tracker.state is not None and tracker.state.lost_tile == 2
    return tracker, results


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(package_dir: Path) -> AsyncIterator[Service]:
    async with running_service(package_dir) as running:
        yield running


async def test_lost_searches_give_the_offline_boxes_and_state(service: Service, frames, expected) -> None:
    tracker, results = expected
    session_id, got = await track(service.stub, frames, long_term=True, **NEVER_CONFIDENT)

    assert_offline_results(got, results)
    record = await service.store.get(session_id)
    assert record is not None
    state = SessionState.model_validate_json(record.state_json)
    assert state.tracker_state == tracker.state
    # `long_term` repeats the package's value: left out of the record, still in effect.
    assert record.options_json == NEVER_CONFIDENT_RECORD
    view = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=KEY)
    assert view.options.long_term


async def test_long_term_off_writes_the_record_of_before(service: Service, frames) -> None:
    session_id, got = await track(service.stub, frames, long_term=False, **NEVER_CONFIDENT)

    assert got[-1].status == pb.TRACK_STATUS_LOST
    record = await service.store.get(session_id)
    assert record is not None and "lost_tile" not in record.state_json
    # Off for a package exported with long-term mode: an override the record must keep.
    assert record.options_json == NEVER_CONFIDENT_RECORD[:-1] + ',"long_term":false}'


async def test_a_package_exported_without_long_term_mode_refuses_it(tmp_path: Path, frames) -> None:
    export_test_package(tmp_path)  # siamrpn_alex as the registry has it
    async with running_service(tmp_path) as running:
        code, details = await status_of(
            running.stub.StartTrack(start_request(frames[0], long_term=True), metadata=KEY)
        )
        session_id, _ = await track(running.stub, frames[:2], long_term=False, **NEVER_CONFIDENT)
        record = await running.store.get(session_id)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "exported without long-term mode" in details
    # An explicit `long_term: false` is the package's own value: the record is the one the previous
    # release writes (and its TrackOptions, refusing unknown keys, reads) for these options.
    assert record is not None and record.options_json == NEVER_CONFIDENT_RECORD


# --- Triton ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triton(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A tritonserver on the CPU test repository of the package: template, search, search_351."""
    with cpu_test_triton(package_dir / TRACKER, tmp_path_factory) as server:
        yield server


@pytest.mark.slow
@pytest.mark.skipif(TRITON_MISSING is not None, reason=str(TRITON_MISSING))
async def test_triton_lost_searches_give_the_offline_boxes(
    package_dir: Path, triton: TritonServer, frames, expected
) -> None:
    _, results = expected
    model = sized_model_name(search_model_name(TRACKER), LOST_SIDE)
    (warmed_up,) = inference_counts(triton, [model], [0])  # the model warm-ups count too
    async with serving_replica(
        package_dir, tracker_packages=[TRACKER], inference_backend=f"triton://{triton.grpc_url}"
    ) as replica:
        _, got = await track(replica.stub, frames, long_term=True, **NEVER_CONFIDENT)

    assert_offline_results(got, results)
    lost_crops = 2 * (FRAME_COUNT - 2)
    (count,) = inference_counts(triton, [model], [warmed_up + lost_crops])
    assert count - warmed_up == lost_crops
