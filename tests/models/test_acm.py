"""ACM trackers: the asymmetric convolution against its formula, the box-size prior, the released
SiamBAN-ACM key layout, the switch to a 510 search crop, and checkpoint -> package -> offline tracker."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from siamstream.checkpoint import load_weights, read_checkpoint
from siamstream.config import TrackerConfig
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.acm import AsymmetricCorrelation
from siamstream.nn.network import build_network
from siamstream.package import export_package, read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.tracking.validation import expected_output_shapes
from tests.models.reference_layouts import (
    acm_branch_layout,
    neck_layout,
    randomise_normalisation,
    resnet50_atrous_layout,
)

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

Layout = dict[str, tuple[int, ...]]


# --- the module against the SiamBAN-ACM formula ---------------------------------------------------------


def batch_norm(x: Tensor, weights: dict[str, Tensor], prefix: str) -> Tensor:
    return F.batch_norm(
        x, weights[f"{prefix}.running_mean"], weights[f"{prefix}.running_var"],
        weights[f"{prefix}.weight"], weights[f"{prefix}.bias"], training=False,
    )  # fmt: skip


def reference_branch(weights: dict[str, Tensor], z: Tensor, box: Tensor, x: Tensor) -> Tensor:
    """SiamBAN-ACM's branch written from the facts: `init` keeps kernel_part and bbox_part, `track` adds
    them to search_part (in that order) and runs xorr_activate and head."""
    kernel = F.relu(batch_norm(F.conv2d(z, weights["conv_kernel.0.weight"]), weights, "conv_kernel.1"))
    kernel_part = F.conv2d(kernel, weights["xorr_kernel.weight"], weights["xorr_kernel.bias"])
    hidden = F.relu(batch_norm(F.linear(box, weights["xorr_bbox.0.weight"], weights["xorr_bbox.0.bias"]),
                               weights, "xorr_bbox.1"))  # fmt: skip
    hidden = F.relu(batch_norm(F.linear(hidden, weights["xorr_bbox.3.weight"], weights["xorr_bbox.3.bias"]),
                               weights, "xorr_bbox.4"))  # fmt: skip
    bbox_part = F.linear(hidden, weights["xorr_bbox.6.weight"]).view(kernel_part.shape)
    search = F.relu(batch_norm(F.conv2d(x, weights["conv_search.0.weight"]), weights, "conv_search.1"))
    feature = F.conv2d(search, weights["xorr_search.weight"]) + kernel_part + bbox_part
    feature = F.relu(batch_norm(feature, weights, "xorr_activate.0"))
    feature = F.conv2d(feature, weights["xorr_activate.2.weight"], weights["xorr_activate.2.bias"], padding=1)
    feature = F.relu(batch_norm(feature, weights, "xorr_activate.3"))
    out = F.conv2d(feature, weights["head.0.weight"], weights["head.0.bias"], padding=1)
    out = F.relu(batch_norm(out, weights, "head.1"))
    return F.conv2d(out, weights["head.3.weight"], weights["head.3.bias"], padding=1)


def test_asymmetric_correlation_equals_the_siamban_acm_formula() -> None:
    torch.manual_seed(0)
    branch = AsymmetricCorrelation(8, 8, 3, kernel_side=5, adjust=True)
    randomise_normalisation(branch, torch.Generator().manual_seed(1))
    with torch.no_grad():
        for module in branch.modules():
            if isinstance(module, nn.BatchNorm1d):
                assert module.running_mean is not None and module.running_var is not None  # tracked stats
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    branch.eval()
    weights = branch.state_dict()
    generator = torch.Generator().manual_seed(2)
    z, x = torch.randn(2, 8, 7, 7, generator=generator), torch.randn(2, 8, 31, 31, generator=generator)
    box = torch.tensor([[60.0, 40.0], [20.0, 90.0]])
    with torch.inference_mode():
        vector = branch.template_vector(z, box)
        output = branch(vector.view(2, 8, 1, 1), x)
        expected = reference_branch(weights, z, box, x)
    assert vector.shape == (2, 8) and output.shape == (2, 3, 25, 25)
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)


def test_the_box_prior_changes_the_template_and_the_response() -> None:
    config = get_config("siamfc_acm_alexnet")
    torch.manual_seed(0)
    network = build_network(config)
    randomise_normalisation(network, torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    crop_z = torch.randint(0, 256, (1, 3, 127, 127), generator=generator).float()
    crop_x = torch.randint(0, 256, (1, 3, 255, 255), generator=generator).float()
    with torch.inference_mode():
        wide = network.template_embedding(crop_z, torch.tensor([[90.0, 30.0]]))
        tall = network.template_embedding(crop_z, torch.tensor([[30.0, 90.0]]))
        wide_response = network.search_outputs(wide, crop_x)[0]
        tall_response = network.search_outputs(tall, crop_x)[0]
    assert wide.shape == (1, 256) and not torch.allclose(wide, tall)
    assert wide_response.shape == (1, 1, 17, 17)
    assert float((wide_response - tall_response).abs().max()) > 1e-3 * float(wide_response.abs().max())


# --- the released SiamBAN-ACM layout --------------------------------------------------------------------


def siamban_acm_layout() -> Layout:
    layout = resnet50_atrous_layout() | neck_layout((512, 1024, 2048))
    for level in (2, 3, 4):
        layout |= acm_branch_layout(f"head.box{level}.cls", 2) | acm_branch_layout(f"head.box{level}.loc", 4)
    return layout | {"head.cls_weight": (3,), "head.loc_weight": (3,), "head.loc_scale": (3,)}


def written_checkpoint(layout: Layout, seed: int) -> dict[str, Tensor]:
    """Plausible trained values for every key: scaled normal weights, unit norms, small level scales."""
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, Tensor] = {}
    for key, shape in layout.items():
        if len(shape) > 1:
            fan_in = math.prod(shape[1:])
            weights[key] = torch.randn(shape, generator=generator) * math.sqrt(1.0 / fan_in)
        elif key.endswith(("running_var", "cls_weight", "loc_weight")) or key.endswith(".weight"):
            weights[key] = torch.rand(shape, generator=generator) * 0.5 + 0.75
        elif key.endswith("loc_scale"):
            weights[key] = torch.full(shape, 0.02)
        else:
            weights[key] = torch.randn(shape, generator=generator) * 0.05
    return weights


def test_siamban_acm_state_dict_has_the_released_layout() -> None:
    state = {k: tuple(v.shape) for k, v in build_network(get_config("siamban_acm_r50")).state_dict().items()
             if not k.endswith("num_batches_tracked")}  # fmt: skip
    assert state == siamban_acm_layout()


def track_round_trip(config: TrackerConfig, weights: dict[str, Tensor], root: Path) -> list:
    """Checkpoint file -> strict import -> package -> runner -> offline tracker on a short sequence."""
    path = root / "weights.pth"
    torch.save({"epoch": 20, "state_dict": {f"module.{k}": v for k, v in weights.items()}}, path)
    network = build_network(config)
    load_weights(network, read_checkpoint(path).state_dict, config.name)
    package = export_package(network, config, root / "package")
    runner = PackageRunner(read_package(package.root))
    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=3, seed=4))
    results = OfflineTracker(config, runner).track_sequence(
        (sequence.frame(index) for index in range(3)), cast("Sequence[float]", sequence.init_box)
    )
    assert [r.frame_index for r in results] == [0, 1, 2]
    for result in results[1:]:
        assert result.score is not None
        assert all(math.isfinite(v) for v in result.bbox) and 0.0 <= result.score <= 1.0
    # The packaged stages compute what the loaded network does, and the prior reaches the embedding.
    rng = np.random.default_rng(0)
    crop_z = rng.integers(0, 256, (1, 3, 127, 127), dtype=np.uint8)
    priors = np.array([[80.0, 30.0]], np.float32), np.array([[30.0, 80.0]], np.float32)
    embeddings = [runner.template(crop_z, prior) for prior in priors]
    with torch.inference_mode():
        eager = network.template_embedding(torch.from_numpy(crop_z).float(), torch.from_numpy(priors[0]))
    # Freezing folds batch norms into the convolutions: equal within 1e-5 of the largest magnitude.
    scale = float(np.abs(eager.numpy()).max())
    np.testing.assert_allclose(embeddings[0], eager.numpy(), rtol=1e-4, atol=1e-5 * scale)
    assert not np.allclose(embeddings[0], embeddings[1])
    return results


def test_written_siamban_acm_checkpoint_imports_strictly_and_tracks(tmp_path: Path) -> None:
    track_round_trip(get_config("siamban_acm_r50"), written_checkpoint(siamban_acm_layout(), 0), tmp_path)


@pytest.mark.parametrize("name", ["siamrpnpp_acm_r50", "siamfc_acm_alexnet"])
def test_acm_variant_checkpoint_to_package_to_offline_tracker(name: str, tmp_path: Path) -> None:
    config = get_config(name)
    layout = {k: tuple(v.shape) for k, v in build_network(config).state_dict().items()
              if not k.endswith("num_batches_tracked")}  # fmt: skip
    track_round_trip(config, written_checkpoint(layout, 1), tmp_path)


# --- the 510 search crop --------------------------------------------------------------------------------

ACM = get_config("siamban_acm_r50")
BOX = (100.0, 120.0, 60.0, 40.0)  # context size sqrt(110 * 90) = 99.5 px: the switch needs > 49.75 px


@pytest.fixture(scope="module")
def frame():
    return np.random.default_rng(0).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)


def peak_outputs(config: TrackerConfig, row: int, column: int, crops: int = 1) -> tuple[np.ndarray, ...]:
    """BAN outputs certain of one cell (background elsewhere), with 64x64 crop-px boxes."""
    cls, loc = (np.zeros(shape, np.float32) for shape in expected_output_shapes(config, crops))
    cls[:, 0], cls[:, 1] = 10.0, -10.0
    cls[:, 0, row, column], cls[:, 1, row, column] = -10.0, 10.0
    loc[:] = 32.0
    return cls, loc


def test_a_large_move_right_switches_to_the_510_crop_for_good(frame) -> None:
    state, _ = init_track(ACM, frame, BOX)
    request = prepare_search(ACM, state, frame)
    assert request.crops.shape == (1, 3, 255, 255)
    # Column 21 of 25 is 72 crop px right of the centre: 72 / (127 / 99.5) = 56.4 image px > 49.75.
    state, _ = finish_search(ACM, state, request, peak_outputs(ACM, 12, 21))
    assert state.fast_motion and state.cx - 129.5 == pytest.approx(72 * 99.4987 / 127, rel=1e-4)
    request = prepare_search(ACM, state, frame)
    assert request.crops.shape == (1, 3, 510, 510)
    wide = ACM.model_copy(update={"crop": ACM.crop.model_copy(update={"instance_size": 510})})
    assert wide.crop.score_size == 56
    with pytest.raises(ValueError, match="must be"):
        finish_search(ACM, state, request, peak_outputs(ACM, 12, 12))  # 25x25 maps no longer fit
    # A still target (the centre of the 56 map) keeps the large crop.
    for _ in range(2):
        centre = state.cx
        state, _ = finish_search(ACM, state, request, peak_outputs(wide, 28, 28))
        assert state.fast_motion and state.cx == pytest.approx(centre)
        request = prepare_search(ACM, state, frame)
        assert request.crops.shape == (1, 3, 510, 510)


@pytest.mark.parametrize(
    ("row", "column", "switches"),
    [(21, 12, True), (12, 19, False), (12, 3, False), (3, 3, False)],
    ids=["down-72px", "right-56px-below-threshold", "left-72px", "up-left"],
)
def test_only_a_large_move_right_or_down_switches(frame, row: int, column: int, switches: bool) -> None:
    state, _ = init_track(ACM, frame, BOX)
    request = prepare_search(ACM, state, frame)
    state, _ = finish_search(ACM, state, request, peak_outputs(ACM, row, column))
    assert state.fast_motion is switches


def test_the_switch_uses_the_move_before_clipping_and_only_for_siamban_acm(frame) -> None:
    # Near the right edge the new centre is clipped to the image width, a move of only ~20 px, but the
    # predicted move (56 px) decides, as in the reference.
    edge_box = (275.0, 100.0, 60.0, 40.0)
    state, _ = init_track(ACM, frame, edge_box)
    request = prepare_search(ACM, state, frame)
    moved, _ = finish_search(ACM, state, request, peak_outputs(ACM, 12, 21))
    assert moved.cx == 320.0 and moved.cx - state.cx < 49.75 and moved.fast_motion
    baseline = get_config("siamban_r50")
    state, _ = init_track(baseline, frame, BOX)
    request = prepare_search(baseline, state, frame)
    state, _ = finish_search(baseline, state, request, peak_outputs(baseline, 12, 21))
    assert not state.fast_motion and prepare_search(baseline, state, frame).crops.shape[-1] == 255


def test_acm_templates_cannot_be_updated() -> None:
    from siamstream.config import TemplateUpdateConfig

    with pytest.raises(ValueError, match="feature-map template"):
        TrackerConfig.model_validate(
            {**ACM.model_dump(), "template_update": TemplateUpdateConfig(enabled=True).model_dump()}
        )
