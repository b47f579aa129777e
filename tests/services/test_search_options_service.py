"""SiamMargin's one more search and adaptive search region through the session service.

The siamrpn_alex package here is exported with seeded random weights, the adaptive search region and the
template update (rate 0.3, gate 0: every frame updates). Its frames score below both options' thresholds,
so every frame is searched twice and the search crop grows 287 -> 351 -> 415 -> 479: the service must
give exactly the offline tracker's boxes, state record and template through the grown crops, their search
features and the second searches, on the embedded backend and on a real tritonserver (CPU test form of
the repository: one search model and one update model per crop side).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from siamstream.config import SearchConfig, TemplateUpdateConfig, TrackerConfig
from siamstream.package import read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackResult
from siamstream_services.core.state import SessionState
from siamstream_services.inference.backend import InferenceError
from siamstream_services.inference.embedded import EmbeddedBackend
from siamstream_services.inference.triton_repository import (
    search_model_name,
    sized_model_name,
    update_model_name,
)
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

CODE = grpc.StatusCode
FRAME_COUNT = 6
PLAIN_SIAMFC = "siamfc_alexnet"
TRITON_MISSING = triton_missing_reason()


def with_search(config: TrackerConfig, **search: bool) -> TrackerConfig:
    return config.model_copy(update={"search": config.search.model_copy(update=search)})


def options_config(**search: int) -> TrackerConfig:
    """siamrpn_alex with the template update (rate 0.3, gate 0) and the adaptive search region (`search`:
    more of its `SearchConfig`)."""
    return get_config(TRACKER).model_copy(
        update={
            "template_update": TemplateUpdateConfig(enabled=True, rate=0.3, gate=0.0),
            "search": SearchConfig(adaptive_region=True, **search),
        }
    )


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """siamrpn_alex with the adaptive region and the template update, and a SiamFC package."""
    directory = tmp_path_factory.mktemp("packages")
    export_test_package(directory, options_config())
    export_test_package(directory, get_config(PLAIN_SIAMFC))
    return directory


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_target_frames(FRAME_COUNT)


@pytest.fixture(scope="module")
def offline(
    package_dir: Path, frames: list[np.ndarray]
) -> tuple[OfflineTracker, RecordingRunner, list[TrackResult]]:
    """The offline tracker of the package's config with one more search too, over `frames`."""
    package = read_package(package_dir / TRACKER)
    runner = RecordingRunner(PackageRunner(package))
    tracker = OfflineTracker(with_search(package.config, one_more_search=True), runner)
    return tracker, runner, tracker.track_sequence(frames, INIT_BOX)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(package_dir: Path) -> AsyncIterator[Service]:
    async with running_service(package_dir) as running:
        yield running


async def test_options_give_the_offline_boxes_state_and_template(
    service: Service, frames: list[np.ndarray], offline
) -> None:
    tracker, runner, expected = offline
    # Every frame searched twice, the crop growing to its largest side and staying there.
    assert runner.crop_sides == [287, 287, 351, 351, 415, 415, 479, 479, 479, 479]
    session_id, results = await track(service.stub, frames, one_more_search=True, adaptive_region=True)

    assert_offline_results(results, expected)
    record = await service.store.get(session_id)
    assert record is not None
    state = SessionState.model_validate_json(record.state_json)
    assert state.tracker_state == tracker.state and state.tracker_state.search_growth == 3
    embedding = np.frombuffer(record.embedding, dtype=record.embedding_dtype).reshape(record.embedding_shape)
    np.testing.assert_array_equal(embedding, tracker._embedding)
    view = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=KEY)
    assert view.options.one_more_search and view.options.adaptive_region


async def test_options_off_track_on_the_normal_crop_with_one_search(
    service: Service, package_dir: Path, frames: list[np.ndarray]
) -> None:
    package = read_package(package_dir / TRACKER)
    runner = RecordingRunner(PackageRunner(package))
    expected = OfflineTracker(with_search(package.config, adaptive_region=False), runner).track_sequence(
        frames, INIT_BOX
    )
    assert runner.crop_sides == [287] * (FRAME_COUNT - 1)
    session_id, results = await track(service.stub, frames, adaptive_region=False)

    assert_offline_results(results, expected)
    record = await service.store.get(session_id)
    assert record is not None and "search_growth" not in record.state_json  # today's record
    view = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=KEY)
    assert not view.options.one_more_search and not view.options.adaptive_region


@pytest.mark.parametrize(
    ("package", "options", "message"),
    [
        ("plain", {"adaptive_region": True}, "exported without the adaptive search region"),
        (PLAIN_SIAMFC, {"one_more_search": True}, "need a single-crop family, not SiamFC"),
    ],
)
async def test_options_refused_where_the_package_cannot_serve_them(
    tmp_path: Path, package_dir: Path, frames: list[np.ndarray], package: str, options: dict, message: str
) -> None:
    if package == "plain":  # siamrpn_alex exported as the registry has it: no grown crops served
        export_test_package(tmp_path)
        directory, tracker = tmp_path, TRACKER
    else:
        directory, tracker = package_dir, package
    async with running_service(directory) as running:
        code, details = await status_of(
            running.stub.StartTrack(start_request(frames[0], tracker, **options), metadata=KEY)
        )
    assert code == CODE.INVALID_ARGUMENT and message in details


async def test_embedded_backend_serves_each_side_and_batches_sides_apart(package_dir: Path) -> None:
    package = read_package(package_dir / TRACKER)
    runner = PackageRunner(package)
    batches: list[tuple[str, int, int]] = []
    backend = EmbeddedBackend(
        [package],
        max_wait_ms=50.0,
        on_batch=lambda _, stage, rows, calls: batches.append((stage, rows, calls)),
    )
    try:
        rng = np.random.default_rng(0)
        embedding = runner.template(
            rng.integers(0, 256, (1, 3, 127, 127), dtype=np.uint8), np.ones((1, 2), np.float32)
        )
        crops = [rng.integers(0, 256, (1, 3, side, side), dtype=np.uint8) for side in (287, 479, 287)]
        results = await asyncio.gather(*(backend.search(TRACKER, embedding, crop) for crop in crops))
        for crop, outputs in zip(crops, results, strict=True):
            for got, want in zip(outputs, runner.search(embedding, crop)[:2], strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        # The two 287 crops in one run, the 479 crop in its own.
        assert sorted(batches) == [("search", 1, 1), ("search", 2, 2)]
        with pytest.raises(InferenceError, match=r"expected \[B, 3, 287, 287\] or \[B, 3, 351, 351\]"):
            await backend.search(TRACKER, embedding, rng.integers(0, 256, (1, 3, 300, 300), dtype=np.uint8))
    finally:
        await backend.close()


# --- Triton ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triton_package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package with the adaptive region grown one step at most: five models (the tritonserver's python
    backend starts a process per model, so the repository is kept small)."""
    directory = tmp_path_factory.mktemp("triton_packages")
    export_test_package(directory, options_config(region_max_steps=1))
    return directory


@pytest.fixture(scope="module")
def triton(triton_package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A tritonserver on the CPU test repository of the package."""
    with cpu_test_triton(triton_package_dir / TRACKER, tmp_path_factory) as server:
        yield server


@pytest.mark.slow
@pytest.mark.skipif(TRITON_MISSING is not None, reason=str(TRITON_MISSING))
async def test_triton_options_give_the_offline_boxes(
    triton_package_dir: Path, triton: TritonServer, frames: list[np.ndarray]
) -> None:
    package = read_package(triton_package_dir / TRACKER)
    runner = RecordingRunner(PackageRunner(package))
    tracker = OfflineTracker(with_search(package.config, one_more_search=True), runner)
    expected = tracker.track_sequence(frames, INIT_BOX)
    assert runner.crop_sides == [287, 287] + [351] * 2 * (FRAME_COUNT - 2)
    # The grown side's models: siamrpn_alex's features are 34 cells wide on a 351 crop.
    models = [
        sized_model_name(search_model_name(TRACKER), 351),
        sized_model_name(update_model_name(TRACKER), 34),
    ]
    warmed_up = inference_counts(triton, models, [0] * len(models))  # the model warm-ups count too
    async with serving_replica(
        triton_package_dir, tracker_packages=[TRACKER], inference_backend=f"triton://{triton.grpc_url}"
    ) as replica:
        _, results = await track(replica.stub, frames, one_more_search=True, adaptive_region=True)

    assert_offline_results(results, expected)
    # Frames 2.. searched twice each at 351, and updated from the kept search's 351 features.
    expected_runs = [2 * (FRAME_COUNT - 2), FRAME_COUNT - 2]
    counts = inference_counts(triton, models, [w + r for w, r in zip(warmed_up, expected_runs, strict=True)])
    assert [count - before for count, before in zip(counts, warmed_up, strict=True)] == expected_runs
