"""SiamMargin's template update through the session service: real gRPC on loopback, real packages.

The siamrpn_alex package here is exported with seeded random weights AND the template update (rate 0.3,
gate 0, so every frame updates): the service must give exactly the offline tracker's boxes and store
exactly its embedding. Beside it, an ACM tracker (vector templates) and a SiamFC package exported without
the update stage, for which the option is refused. The Triton variant serves the same package from a
real tritonserver (CPU test form of the repository, three models).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import tritonclient.grpc as tritonclient
from tritonclient.utils import np_to_triton_dtype

from siamstream.package import read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackResult
from siamstream_services.core.state import SessionState
from siamstream_services.inference.embedded import EmbeddedBackend
from siamstream_services.inference.triton_repository import search_model_name, update_model_name
from siamstream_services.inference.triton_server import TritonServer
from siamstream_services.v1 import tracking_pb2 as pb
from tests.services.replica_fixtures import KEY, assert_offline_results, serving_replica, start_request, track
from tests.services.session_fixtures import (
    INIT_BOX,
    TRACKER,
    UPDATE_RATE,
    Service,
    export_test_package,
    export_update_package,
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
FRAME_COUNT = 10
ACM_TRACKER = "siamfc_acm_alexnet"
PLAIN_TRACKER = "siamfc_alexnet"
TRITON_MISSING = triton_missing_reason()


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("packages")
    export_update_package(directory)
    for name in (ACM_TRACKER, PLAIN_TRACKER):
        export_test_package(directory, get_config(name))
    return directory


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_target_frames(FRAME_COUNT)


@pytest.fixture(scope="module")
def plain_package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same siamrpn_alex weights exported without the update stage: today's package."""
    directory = tmp_path_factory.mktemp("plain")
    export_test_package(directory)
    return directory


def offline_tracker(
    package_dir: Path, frames: Sequence[np.ndarray]
) -> tuple[OfflineTracker, list[TrackResult]]:
    """The offline tracker of `package_dir`'s siamrpn_alex, with its package's config, run over `frames`."""
    package = read_package(package_dir / TRACKER)
    tracker = OfflineTracker(package.config, PackageRunner(package))
    return tracker, tracker.track_sequence(frames, INIT_BOX)


@pytest.fixture(scope="module")
def offline_with_update(
    package_dir: Path, frames: list[np.ndarray]
) -> tuple[OfflineTracker, list[TrackResult]]:
    return offline_tracker(package_dir, frames)


@pytest.fixture(scope="module")
def offline_without_update(
    plain_package_dir: Path, frames: list[np.ndarray]
) -> tuple[OfflineTracker, list[TrackResult]]:
    return offline_tracker(plain_package_dir, frames)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(package_dir: Path) -> AsyncIterator[Service]:
    async with running_service(package_dir) as running:
        yield running


async def stored(service: Service, session_id: str) -> tuple[SessionState, np.ndarray]:
    record = await service.store.get(session_id)
    assert record is not None
    embedding = np.frombuffer(record.embedding, dtype=record.embedding_dtype).reshape(record.embedding_shape)
    return SessionState.model_validate_json(record.state_json), embedding


async def test_update_session_gives_the_offline_boxes_and_stores_its_embedding(
    service: Service, package_dir: Path, frames: list[np.ndarray], offline_with_update, offline_without_update
) -> None:
    tracker, expected = offline_with_update
    session_id, results = await track(service.stub, frames, template_update=True)

    assert_offline_results(results, expected)
    state, embedding = await stored(service, session_id)
    assert state.tracker_state.template_updates == FRAME_COUNT - 1
    assert state.tracker_state.initial_template_weight == pytest.approx(
        (1 - UPDATE_RATE) ** (FRAME_COUNT - 1)
    )
    np.testing.assert_array_equal(embedding, tracker._embedding)
    initial, _ = offline_tracker(package_dir, frames[:1])
    assert np.abs(embedding - initial._embedding).max() > 1e-3  # the template really moved
    # ... and moved the boxes: without the update the same frames give other boxes.
    assert [r.bbox for r in offline_without_update[1]] != [r.bbox for r in expected]


async def test_option_off_tracks_as_before_with_the_template_kept(
    service: Service, frames: list[np.ndarray], offline_without_update
) -> None:
    offline, expected = offline_without_update
    session_id, results = await track(service.stub, frames, template_update=False)

    # Today's boxes: those of the same weights exported without the update stage.
    assert_offline_results(results, expected)
    state, embedding = await stored(service, session_id)
    assert state.tracker_state.template_updates == 0 and state.tracker_state.initial_template_weight == 1.0
    np.testing.assert_array_equal(embedding, offline._embedding)  # still the first frame's template
    view = await service.stub.GetTrack(pb.GetTrackRequest(session_id=session_id), metadata=KEY)
    assert not view.options.template_update


async def test_embedded_search_hands_the_features_only_to_callers_that_ask(
    package_dir: Path, frames: list[np.ndarray]
) -> None:
    package = read_package(package_dir / TRACKER)
    runner = PackageRunner(package)
    backend = EmbeddedBackend([package, read_package(package_dir / PLAIN_TRACKER)], max_wait_ms=0.0)
    try:
        rng = np.random.default_rng(0)
        embedding = runner.template(
            rng.integers(0, 256, (1, 3, 127, 127), dtype=np.uint8), np.ones((1, 2), np.float32)
        )
        crop = rng.integers(0, 256, (1, 3, 287, 287), dtype=np.uint8)
        cls, loc, features = runner.search(embedding, crop)
        plain = await backend.search(TRACKER, embedding, crop)
        with_features = await backend.search(TRACKER, embedding, crop, search_features=True)
        assert len(plain) == 2 and len(with_features) == 3
        for got, want in zip(with_features, (cls, loc, features), strict=True):
            np.testing.assert_array_equal(got, want)
        roi = np.array([[-60.0, -50.0, 70.0, 80.0]], np.float32)
        rate = np.array([UPDATE_RATE], np.float32)
        np.testing.assert_array_equal(
            await backend.update(TRACKER, embedding, features, roi, rate),
            runner.update(embedding, features, roi, rate),
        )
        with pytest.raises(Exception, match="without the template update stage"):
            await backend.search(
                PLAIN_TRACKER,
                np.zeros((1, 256 * 6 * 6), np.float32),
                np.zeros((1, 3, 255, 255), np.uint8),
                search_features=True,
            )
    finally:
        await backend.close()


@pytest.mark.parametrize(
    ("tracker", "message"),
    [
        (ACM_TRACKER, "needs a feature-map template; ACM templates are vectors"),
        (PLAIN_TRACKER, "siamfc_alexnet package was exported without the template update stage (update.pt)"),
    ],
)
async def test_option_refused_without_a_feature_map_template_or_an_update_stage(
    service: Service, frames: list[np.ndarray], tracker: str, message: str
) -> None:
    async def session_count() -> int:
        listed = await service.stub.ListTracks(pb.ListTracksRequest(page_size=100), metadata=KEY)
        return len(listed.sessions)

    before = await session_count()
    code, details = await status_of(
        service.stub.StartTrack(start_request(frames[0], tracker, template_update=True), metadata=KEY)
    )
    assert code == CODE.INVALID_ARGUMENT and message in details
    assert await session_count() == before
    started = await service.stub.StartTrack(start_request(frames[0], tracker), metadata=KEY)
    assert started.result.status == pb.TRACK_STATUS_TRACKING  # the tracker itself is fine without the option


# --- Triton ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triton(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A tritonserver on the CPU test repository of the update-capable package."""
    with cpu_test_triton(package_dir / TRACKER, tmp_path_factory) as server:
        yield server


@pytest.mark.slow
@pytest.mark.skipif(TRITON_MISSING is not None, reason=str(TRITON_MISSING))
async def test_triton_update_session_gives_the_offline_boxes(
    package_dir: Path,
    triton: TritonServer,
    frames: list[np.ndarray],
    offline_with_update,
    offline_without_update,
) -> None:
    model = update_model_name(TRACKER)
    [warmed_up] = inference_counts(triton, [model], [0])  # the model warm-up counts too
    async with serving_replica(
        package_dir, tracker_packages=[TRACKER], inference_backend=f"triton://{triton.grpc_url}"
    ) as replica:
        _, results = await track(replica.stub, frames, template_update=True)
        _, plain_results = await track(replica.stub, frames[:2], template_update=False)

    assert_offline_results(results, offline_with_update[1])
    updates = FRAME_COUNT - 1  # every update ran in Triton, none for the session without the option
    assert inference_counts(triton, [model], [warmed_up + updates])[0] - warmed_up == updates
    assert_offline_results(plain_results, offline_without_update[1][:2])
    # The search model serves a request for the head outputs alone: the features stay on the server.
    package = read_package(package_dir / TRACKER)
    side = package.config.crop.instance_size
    arrays: tuple[np.ndarray, ...] = (
        np.zeros((1, package.meta.embedding_dim), np.float32),
        np.zeros((1, 3, side, side), np.uint8),
    )
    inputs = []
    for index, array in enumerate(arrays):
        inputs.append(
            tritonclient.InferInput(f"INPUT__{index}", list(array.shape), np_to_triton_dtype(array.dtype))
        )
        inputs[-1].set_data_from_numpy(array)
    requested = [tritonclient.InferRequestedOutput(name) for name in ("OUTPUT__0", "OUTPUT__1")]
    client = tritonclient.InferenceServerClient(triton.grpc_url)
    try:
        result = client.infer(search_model_name(TRACKER), inputs, outputs=requested)
    finally:
        client.close()
    assert [output.name for output in result.get_response().outputs] == ["OUTPUT__0", "OUTPUT__1"]
