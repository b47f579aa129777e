"""SiamMargin's online template update: RoI-Align, the update stage, the step's plan, packages, tracking."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch

from siamstream.checkpoint import load_weights, read_checkpoint
from siamstream.config import TemplateUpdateConfig, TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.network import build_network
from siamstream.nn.roi_align import roi_align
from siamstream.nn.template_update import FeatureSearchStage, TemplateUpdateStage
from siamstream.package import UPDATE_FILE, export_package, read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackerState
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.tracking.template_update import plan_template_update, split_search_outputs
from siamstream.tracking.validation import expected_output_shapes

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

BOX = (100.0, 120.0, 60.0, 40.0)


def with_update(config: TrackerConfig, rate: float = 0.25, gate: float = 0.0) -> TrackerConfig:
    return config.model_copy(
        update={"template_update": TemplateUpdateConfig(enabled=True, rate=rate, gate=gate)}
    )


# --- RoI-Align ------------------------------------------------------------------------------------------


def slow_roi_align(
    features: np.ndarray, roi: np.ndarray, output_size: int, sampling_ratio: int
) -> np.ndarray:
    """torchvision's aligned RoI-Align written out sample by sample, for one map [C,H,W] and one region."""
    channels, height, width = features.shape

    def bilinear(y: float, x: float) -> np.ndarray:
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return np.zeros(channels)
        y, x = max(y, 0.0), max(x, 0.0)
        y_low, x_low = int(y), int(x)
        if y_low >= height - 1:
            y_low = y_high = height - 1
            y = float(y_low)
        else:
            y_high = y_low + 1
        if x_low >= width - 1:
            x_low = x_high = width - 1
            x = float(x_low)
        else:
            x_high = x_low + 1
        ly, lx = y - y_low, x - x_low
        return (
            (1 - ly) * (1 - lx) * features[:, y_low, x_low]
            + (1 - ly) * lx * features[:, y_low, x_high]
            + ly * (1 - lx) * features[:, y_high, x_low]
            + ly * lx * features[:, y_high, x_high]
        )

    x1, y1, x2, y2 = (float(v) - 0.5 for v in roi)
    bin_w, bin_h = (x2 - x1) / output_size, (y2 - y1) / output_size
    result = np.zeros((channels, output_size, output_size))
    for ph in range(output_size):
        for pw in range(output_size):
            total = np.zeros(channels)
            for iy in range(sampling_ratio):
                for ix in range(sampling_ratio):
                    y = y1 + ph * bin_h + (iy + 0.5) * bin_h / sampling_ratio
                    x = x1 + pw * bin_w + (ix + 0.5) * bin_w / sampling_ratio
                    total += bilinear(y, x)
            result[:, ph, pw] = total / sampling_ratio**2
    return result


def test_roi_align_of_a_ramp_is_the_ramp_at_the_bin_centres() -> None:
    # f(y, x) = 2x + 3y + 1 at cell centres; bilinear sampling of a linear map is exact inside the map, and
    # a bin's mean of symmetric samples is the value at the bin centre.
    rows, columns = torch.meshgrid(torch.arange(9.0), torch.arange(11.0), indexing="ij")
    ramp = (2 * columns + 3 * rows + 1).reshape(1, 1, 9, 11)
    roi = torch.tensor([[2.0, 1.5, 8.0, 6.0]])  # aligned units: cell j's centre is at j + 0.5
    bins = roi_align(ramp, roi, output_size=3)
    # Bin centres in cell-index coordinates: x = 1.5 + 2*(k + 0.5) = 2.5, 4.5, 6.5; y = 1 + 1.5*(k + 0.5).
    expected_x = torch.tensor([2.5, 4.5, 6.5])
    expected_y = torch.tensor([1.75, 3.25, 4.75])
    expected = 2 * expected_x.view(1, 3) + 3 * expected_y.view(3, 1) + 1
    torch.testing.assert_close(bins[0, 0], expected)


def test_roi_align_matches_the_sample_by_sample_reference_inside_and_across_the_border() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, 4, 8, 10, generator=generator, dtype=torch.float64)
    rois = torch.tensor(
        [
            [1.3, 2.2, 6.9, 7.1],  # inside
            [-2.5, -1.0, 3.0, 4.5],  # across the top-left border: clamped and zeroed samples
            [7.0, 5.5, 11.8, 9.9],  # across the bottom-right border
        ],
        dtype=torch.float64,
    )
    for sampling_ratio in (1, 2, 3):
        bins = roi_align(features, rois, output_size=5, sampling_ratio=sampling_ratio)
        for row in range(3):
            expected = slow_roi_align(features[row].numpy(), rois[row].numpy(), 5, sampling_ratio)
            np.testing.assert_allclose(bins[row].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_roi_align_scripts_and_pairs_each_row_with_its_own_region() -> None:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 5, 12, 12, generator=generator)
    rois = torch.tensor([[1.0, 1.0, 8.0, 8.0], [3.0, 2.0, 11.0, 9.0]])
    scripted = torch.jit.script(roi_align)
    torch.testing.assert_close(scripted(features, rois, 7, 2), roi_align(features, rois, 7))
    single = roi_align(features[1:], rois[1:], 7)
    torch.testing.assert_close(roi_align(features, rois, 7)[1:], single)
    assert not torch.allclose(roi_align(features, rois.flip(0), 7)[1:], single)


# --- the update stage -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def siamfc_network():
    torch.manual_seed(0)
    return build_network(get_config("siamfc_alexnet"))


def test_update_stage_rate_0_keeps_rate_1_replaces_and_between_blends(siamfc_network) -> None:
    config = get_config("siamfc_alexnet")
    stage = TemplateUpdateStage(siamfc_network, config)
    generator = torch.Generator().manual_seed(2)
    embedding = torch.randn(3, siamfc_network.embedding_dim, generator=generator)
    features = torch.randn(3, 256, 22, 22, generator=generator)
    roi = torch.tensor([[-63.5, -63.5, 63.5, 63.5], [-40.0, -20.0, 60.0, 80.0], [0.0, 0.0, 127.0, 127.0]])
    with torch.inference_mode():
        updated = stage(embedding, features, roi, torch.tensor([0.0, 1.0, 0.25]))
    # By hand: SiamFC's template is the 6x6 AlexNet map (6 cells x stride 8 = 48 of the 127 template
    # pixels); crop px from the centre -> feature units: / 8 + 22 / 2.
    footprint = 48 / 127
    centre = (roi[:, :2] + roi[:, 2:]) / 2
    half = (roi[:, 2:] - roi[:, :2]) / 2 * footprint
    boxes = torch.cat([centre - half, centre + half], 1) / 8 + 11
    candidate = roi_align(features, boxes, 6).flatten(1)
    assert torch.equal(updated[0], embedding[0])
    torch.testing.assert_close(updated[1], candidate[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(updated[2], 0.75 * embedding[2] + 0.25 * candidate[2], rtol=1e-5, atol=1e-5)


def test_update_of_the_template_region_of_its_own_features_is_close_to_the_template(siamfc_network) -> None:
    # A search crop whose centre 127 px are the template crop: the candidate cut at the template's
    # footprint re-samples the template's own map (only the crop border and the sampling differ).
    config = get_config("siamfc_alexnet")
    generator = torch.Generator().manual_seed(3)
    template_crop = torch.randint(0, 256, (1, 3, 127, 127), generator=generator).float()
    search_crop = torch.full((1, 3, 255, 255), 128.0)
    search_crop[:, :, 64:191, 64:191] = template_crop
    with torch.inference_mode():
        embedding = siamfc_network.template_embedding(template_crop, torch.zeros(1, 2))
        *_, features = FeatureSearchStage(siamfc_network)(embedding, search_crop)
        other = torch.randn(embedding.shape, generator=generator) * embedding.std()
        candidate = TemplateUpdateStage(siamfc_network, config)(
            other, features, torch.tensor([[-63.5, -63.5, 63.5, 63.5]]), torch.ones(1)
        )
    assert float(torch.nn.functional.cosine_similarity(candidate, embedding)) > 0.9
    assert float(torch.nn.functional.cosine_similarity(other, embedding)) < 0.2


def test_feature_search_stage_returns_the_plain_outputs_and_the_level_maps() -> None:
    config = get_config("siamrpn_alex")
    torch.manual_seed(0)
    network = build_network(config)
    generator = torch.Generator().manual_seed(4)
    with torch.inference_mode():
        embedding = network.template_embedding(
            torch.rand(2, 3, 127, 127, generator=generator) * 255, torch.ones(2, 2)
        )
        crop = torch.rand(2, 3, 287, 287, generator=generator) * 255
        cls, loc, features = FeatureSearchStage(network)(embedding, crop)
        plain_cls, plain_loc = network.search_outputs(embedding, crop)
    torch.testing.assert_close(cls, plain_cls)
    torch.testing.assert_close(loc, plain_loc)
    assert features.shape == (2, 256, 26, 26) and features.dtype == torch.float32


# --- the tracking side ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame():
    return np.random.default_rng(0).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)


def moved_outputs(config: TrackerConfig, crops: int, score_logit: float, features: bool) -> tuple:
    """SiamRPN outputs whose best anchor (the square one) sits one cell right of the centre."""
    cls, loc = (np.zeros(shape, np.float32) for shape in expected_output_shapes(config, crops))
    cls[:, :5] = 5.0  # background everywhere ...
    centre = config.crop.score_size // 2
    cls[:, 5 + 2, centre, centre + 1] = score_logit  # ... but the 64x64 anchor one cell right
    cls[:, 2, centre, centre + 1] = 0.0
    outputs = (cls, loc)
    return (*outputs, np.ones((crops, 256, 26, 26), np.float32)) if features else outputs


def test_plan_updates_above_the_gate_with_the_target_region_and_counts(frame) -> None:
    config = with_update(get_config("siamrpn_alex"), rate=0.25, gate=0.9)
    state, _ = init_track(config, frame, BOX)
    request = prepare_search(config, state, frame)
    outputs = moved_outputs(config, 1, score_logit=10.0, features=True)
    current, result = finish_search(config, state, request, outputs)
    assert result.score is not None and result.score > 0.99
    updated, update = plan_template_update(config, state, request, current, outputs)
    assert update is not None
    assert (updated.template_updates, updated.initial_template_weight) == (1, 0.75)
    assert update.search_features.shape == (1, 256, 26, 26) and update.rate.tolist() == [0.25]
    # The box moved one cell (8 crop px) right; the region is the template crop (127 px) scaled by the
    # change of context size, centred on the new target.
    side = 127 * math.sqrt(
        (current.w + 0.5 * (current.w + current.h)) * (current.h + 0.5 * (current.w + current.h))
    )
    side /= math.sqrt(110 * 90)
    dx = (current.cx - state.cx) * request.scale_z
    assert dx == pytest.approx(8.0, abs=1e-4)
    np.testing.assert_allclose(update.roi, [[dx - side / 2, -side / 2, dx + side / 2, side / 2]], rtol=1e-5)


def test_plan_skips_below_the_gate_at_rate_0_and_when_disabled(frame) -> None:
    base = get_config("siamrpn_alex")
    # (config, logit of the best anchor, expected score bound): sigmoid(1) = 0.73 is below the 0.9 gate.
    for config, logit in (
        (with_update(base, gate=0.9), 1.0),
        (with_update(base, rate=0.0), 10.0),
        (base, 10.0),
    ):
        state, _ = init_track(config, frame, BOX)
        request = prepare_search(config, state, frame)
        outputs = moved_outputs(config, 1, score_logit=logit, features=config.template_update.enabled)
        current, result = finish_search(config, state, request, outputs)
        assert result.score == pytest.approx(1 / (1 + math.exp(-logit)), rel=1e-5)
        updated, update = plan_template_update(config, state, request, current, outputs)
        assert update is None and updated == current


def test_plan_needs_search_features_and_split_keeps_plain_outputs(frame) -> None:
    config = with_update(get_config("siamrpn_alex"))
    state, _ = init_track(config, frame, BOX)
    request = prepare_search(config, state, frame)
    plain = moved_outputs(config, 1, score_logit=10.0, features=False)
    current, _ = finish_search(config, state, request, plain)
    with pytest.raises(ValueError, match="no search features"):
        plan_template_update(config, state, request, current, plain)
    heads, features = split_search_outputs(get_config("siamrpn_alex"), (*plain, np.zeros(1)), 1)
    assert len(heads) == 3 and features is None  # a tracker without the update gets no features split off


def test_siamfc_updates_from_the_scale_1_crop(frame) -> None:
    config = with_update(get_config("siamfc_alexnet"))
    state, _ = init_track(config, frame, BOX)
    request = prepare_search(config, state, frame)
    features = np.stack([np.full((256, 22, 22), row, np.float32) for row in range(3)])
    outputs = (np.ones((3, 1, 17, 17), np.float32) * 5, features)
    current, _ = finish_search(config, state, request, outputs)
    _, update = plan_template_update(config, state, request, current, outputs)
    assert update is not None and float(update.search_features.max()) == 1.0


def test_state_with_update_counters_round_trips_through_json() -> None:
    state = TrackerState(
        family="siamrpn", frame_index=3, cx=1.0, cy=2.0, w=3.0, h=4.0, image_width=9, image_height=9,
        channel_average=(1.0, 2.0, 3.0), template_updates=2, initial_template_weight=0.5625, fast_motion=True,
    )  # fmt: skip
    assert TrackerState.model_validate_json(state.model_dump_json()) == state
    with pytest.raises(ValueError):
        state.model_validate({**state.model_dump(), "initial_template_weight": 1.5})


# --- packages and the offline tracker -------------------------------------------------------------------


def export(config: TrackerConfig, root: Path) -> PackageRunner:
    torch.manual_seed(0)
    return PackageRunner(export_package(build_network(config), config, root))


def test_update_capable_package_files_meta_and_update_stage(tmp_path: Path) -> None:
    config = with_update(get_config("siamrpn_alex"))
    runner = export(config, tmp_path / "package")
    package = read_package(tmp_path / "package")
    assert package.meta.template_update and (tmp_path / "package" / UPDATE_FILE).is_file()
    assert package.meta.search_outputs == ("cls", "loc", "search_features")
    plain = export(get_config("siamrpn_alex"), tmp_path / "plain")
    assert not plain.package.meta.template_update and not (tmp_path / "plain" / UPDATE_FILE).exists()
    with pytest.raises(ValueError, match="no template update stage"):
        plain.update(np.zeros((1, 8192), np.float32), np.zeros((1, 256, 26, 26), np.float32),
                     np.zeros((1, 4), np.float32), np.zeros(1, np.float32))  # fmt: skip

    rng = np.random.default_rng(0)
    embedding = runner.template(
        rng.integers(0, 256, (2, 3, 127, 127), dtype=np.uint8), np.ones((2, 2), np.float32)
    )
    *heads, features = runner.search(embedding, rng.integers(0, 256, (2, 3, 287, 287), dtype=np.uint8))
    assert [h.shape for h in heads] == [(2, 10, 21, 21), (2, 20, 21, 21)] and features.shape == (
        2,
        256,
        26,
        26,
    )
    roi = np.array([[-63.5, -63.5, 63.5, 63.5], [-50.0, -30.0, 70.0, 90.0]], np.float32)
    updated = runner.update(embedding, features, roi, np.array([0.0, 0.5], np.float32))
    np.testing.assert_array_equal(updated[0], embedding[0])
    torch.manual_seed(0)
    network = build_network(config)
    with torch.inference_mode():
        eager = TemplateUpdateStage(network, config)(
            torch.from_numpy(embedding),
            torch.from_numpy(features),
            torch.from_numpy(roi),
            torch.tensor([0.0, 0.5]),
        )
    np.testing.assert_allclose(updated, eager.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_offline_tracker_applies_the_update_every_frame_above_the_gate(tmp_path: Path, rate: float) -> None:
    config = with_update(get_config("siamrpn_alex"), rate=rate, gate=0.0)
    runner = export(config, tmp_path / "package")
    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=4, seed=1))
    tracker = OfflineTracker(config, runner)
    tracker.init(sequence.frame(0), cast("Sequence[float]", sequence.init_box))
    assert tracker._embedding is not None
    initial = tracker._embedding.copy()
    for index in range(1, 4):
        tracker.track(sequence.frame(index))
    state = tracker.state
    assert state is not None and tracker._embedding is not None
    if rate == 0.0:
        np.testing.assert_array_equal(tracker._embedding, initial)
        assert state.template_updates == 0 and state.initial_template_weight == 1.0
    else:
        assert state.template_updates == 3
        assert state.initial_template_weight == pytest.approx(0.7**3)
        assert not np.allclose(tracker._embedding, initial)


def test_siammargin_checkpoint_to_package_to_offline_tracker(tmp_path: Path) -> None:
    config = get_config("siammargin_r50")
    assert config.template_update.enabled and config.head.kind == "rpn"
    torch.manual_seed(5)  # default initialisation: finite activations through ResNet-50
    trained = build_network(config).state_dict()
    weights = tmp_path / "siammargin.pth"
    torch.save(
        {key: value for key, value in trained.items() if not key.endswith("num_batches_tracked")}, weights
    )
    network = build_network(config)
    load_weights(network, read_checkpoint(weights).state_dict, config.name)
    for key, value in network.state_dict().items():
        assert torch.equal(value, trained[key]), key
    package = export_package(network, config, tmp_path / "package")
    runner = PackageRunner(read_package(package.root))
    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=3, seed=2))
    gated = with_update(config, rate=config.template_update.rate, gate=0.0)
    tracker = OfflineTracker(gated, runner)
    results = tracker.track_sequence(
        (sequence.frame(i) for i in range(3)), cast("Sequence[float]", sequence.init_box)
    )
    assert len(results) == 3 and all(math.isfinite(v) for r in results for v in r.bbox)
    assert tracker.state is not None and tracker.state.template_updates == 2
