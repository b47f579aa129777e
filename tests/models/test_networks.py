"""Networks of every registered tracker: reference state-dict layout, Contract 1 stages, batching, precision.

The expected layouts (`tests/models/reference_layouts.py`) are written down from the reference sources
(pysot, siamban, SiamCAR, siamfc-pytorch), not derived from `siamstream.nn`.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import Tensor, nn

from siamstream.config import Precision, TrackerConfig
from siamstream.nn.correlation import xcorr_depthwise, xcorr_full
from siamstream.nn.neck import AdjustLayer
from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.nn.small_staged import SmallStagedBackbone
from siamstream.nn.stages import SearchStage, TemplateStage, script_stages
from siamstream.registry import get_config, list_trackers
from tests.models.reference_layouts import Layout, randomise_normalisation, reference_layout

# Batching and precision tests use a smaller search crop than the trackers (the batch logic does not depend
# on its size) to keep the ResNet-50 models fast. 175 still gives ResNet/MobileNet search maps of 21 >= 20,
# so the neck does not mistake them for template maps.
SMALL_SEARCH_SIDE = 175
BATCH = 3
# Reduced precision is emulated, 40-100x slower than fp32, on CPUs without native bf16: only the AlexNet
# and small-backbone trackers are affordable there.
NATIVE_BF16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
CHEAP_BACKBONES = ("alexnet_legacy", "alexnet_siamfc", "small_staged", "small_staged_fused")

# TorchScript is deprecated in torch 2.13 but is what the stages are exported as (Contract 1, Triton).
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

# Literal entries of the facts file and the reference checkpoints, per registered tracker.
REFERENCE_ANCHORS: dict[str, Layout] = {
    "siamrpnpp_r50": {
        "backbone.conv1.weight": (64, 3, 7, 7),
        "backbone.layer2.0.downsample.0.weight": (512, 256, 3, 3),
        "backbone.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "neck.downsample2.downsample.0.weight": (256, 512, 1, 1),
        "neck.downsample4.downsample.0.weight": (256, 2048, 1, 1),
        "rpn_head.rpn2.cls.head.3.weight": (10, 256, 1, 1),
        "rpn_head.rpn4.loc.head.3.bias": (20,),
        "rpn_head.cls_weight": (3,),
        "rpn_head.loc_weight": (3,),
    },
    "siamrpnpp_mobilenetv2": {
        "backbone.layer7.0.conv.6.weight": (448, 1344, 1, 1),
        "neck.downsample3.downsample.0.weight": (256, 134, 1, 1),
    },
    "siamrpn_alex": {
        "backbone.features.0.weight": (96, 3, 11, 11),
        "backbone.features.15.running_var": (256,),
        "rpn_head.cls.conv_kernel.0.weight": (256, 256, 3, 3),
        "rpn_head.loc.head.3.weight": (20, 256, 1, 1),
    },
    "siamban_r50": {"head.box3.cls.head.3.weight": (2, 256, 1, 1), "head.loc_scale": (3,)},
    "siamcar_r50": {"down.weight": (768, 256, 1, 1), "car_head.cls_logits.weight": (2, 256, 3, 3)},
    "siamfc_alexnet": {"backbone.conv1.0.weight": (96, 3, 11, 11), "backbone.conv5.0.bias": (256,)},
    "dcfnet_r50": {
        "backbone.conv1.weight": (64, 3, 7, 7),
        "backbone.layer2.0.downsample.0.weight": (512, 256, 3, 3),
        "backbone.conv4.weight": (256, 512, 3, 3),
        "backbone.fusion2.bn.weight": (512,),
        "car_head.bbox_pred.weight": (4, 256, 3, 3),
    },
    "dcfnet_small": {
        "backbone.conv1.weight": (16, 3, 7, 7),
        "backbone.layer1.0.weight": (32, 16, 3, 3),
        "backbone.conv6.weight": (32, 32, 3, 3),
        "backbone.fusion1.bn.weight": (16,),
        "backbone.fusion2.bn.weight": (32,),
        "car_head.bbox_pred.weight": (4, 32, 3, 3),
    },
    "siamrpnpp_small": {
        "backbone.conv4.weight": (32, 32, 3, 3),
        "neck.downsample4.downsample.0.weight": (32, 32, 1, 1),
        "rpn_head.rpn2.cls.head.3.weight": (10, 32, 1, 1),
        "rpn_head.cls_weight": (3,),
    },
    "siamban_acm_r50": {
        "head.box2.cls.xorr_kernel.weight": (256, 256, 5, 5),
        "head.box2.cls.xorr_kernel.bias": (256,),
        "head.box3.loc.xorr_search.weight": (256, 256, 5, 5),
        "head.box4.cls.xorr_bbox.0.weight": (32, 2),
        "head.box4.cls.xorr_bbox.6.weight": (256, 32),
        "head.box2.loc.xorr_activate.2.weight": (256, 256, 3, 3),
        "head.box3.loc.head.3.weight": (4, 256, 3, 3),
        "head.loc_scale": (3,),
    },
    "siamcan_r50": {
        "head.box2.channel_attention.conv.weight": (1, 1, 5),
        "head.box4.loc.spatial_attention.conv.weight": (1, 2, 7, 7),
        "head.box3.cls.head.3.weight": (2, 256, 1, 1),
        "head.level_weight": (3,),
    },
}
# Template embedding lengths: [cls, loc] 5x5 kernels of 256 channels per level (RPN, BAN; 4x4 for AlexNet),
# the three 7x7 neck maps (CAR), the 6x6 backbone map (SiamFC).
EMBEDDING_DIMS = {
    "siamrpnpp_r50": 3 * 2 * 256 * 5 * 5,
    "siamrpnpp_r50_otb": 3 * 2 * 256 * 5 * 5,
    "siamrpnpp_mobilenetv2": 3 * 2 * 256 * 5 * 5,
    "siamban_r50": 3 * 2 * 256 * 5 * 5,
    "siamrpn_alex": 2 * 256 * 4 * 4,
    "siamcar_r50": 3 * 256 * 7 * 7,
    "siamfc_alexnet": 256 * 6 * 6,
    # DCFNet: the template's stage-1 (64x31x31) and stage-2 (512x15x15) maps, the 7x7 kernel of its final map.
    "dcfnet_r50": 64 * 31 * 31 + 512 * 15 * 15 + 256 * 7 * 7,
    # SiamCAN: per level the [cls, loc] 5x5 kernels and the 256 channel-attention weights.
    "siamcan_r50": 3 * (2 * 256 * 5 * 5 + 256),
    # ACM: one 256-vector per level and branch (template term plus box-size term); one for SiamFC-ACM.
    "siamban_acm_r50": 3 * 2 * 256,
    "siamrpnpp_acm_r50": 3 * 2 * 256,
    "siamfc_acm_alexnet": 256,
    "siammargin_r50": 3 * 2 * 256 * 5 * 5,
    # The small backbone's trackers: the same pieces 32 channels wide; DCFNet's stage maps are 16x31x31
    # and 32x15x15.
    "siamrpnpp_small": 3 * 2 * 32 * 5 * 5,
    "siammargin_small": 3 * 2 * 32 * 5 * 5,
    "siamban_small": 3 * 2 * 32 * 5 * 5,
    "siamcar_small": 3 * 32 * 7 * 7,
    "siamcan_small": 3 * (2 * 32 * 5 * 5 + 32),
    "siamrpnpp_acm_small": 3 * 2 * 32,
    "siamban_acm_small": 3 * 2 * 32,
    "dcfnet_small": 16 * 31 * 31 + 32 * 15 * 15 + 32 * 7 * 7,
}

# --- fixtures --------------------------------------------------------------------------------------------


class Tracker(NamedTuple):
    config: TrackerConfig
    network: SiameseNetwork


class StreamsRun(NamedTuple):
    """Fp32 eager stage results for `BATCH` different streams, from float crops holding integer values:
    all rows in one call (`batch_*`) and each row in its own call (`single_*`)."""

    crop_z: Tensor  # uint8 [BATCH,3,Z,Z]
    box_prior: Tensor  # float32 [BATCH,2]
    crop_x: Tensor  # uint8 [BATCH,3,X,X], X = SMALL_SEARCH_SIDE
    batch_embedding: Tensor
    batch_outputs: tuple[Tensor, ...]
    single_embeddings: list[Tensor]
    single_outputs: list[tuple[Tensor, ...]]


def crops(generator: torch.Generator, batch: int, side: int) -> Tensor:
    return torch.randint(0, 256, (batch, 3, side, side), generator=generator, dtype=torch.uint8)


def box_priors(generator: torch.Generator, batch: int) -> Tensor:
    return torch.rand(batch, 2, generator=generator) * 60 + 20


def assert_close_relative(actual: Tensor, expected: Tensor, tolerance: float) -> None:
    """Every element within `tolerance` times the largest magnitude of `expected`."""
    assert actual.shape == expected.shape
    scale = float(expected.abs().max())
    torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance * scale)


@pytest.fixture(scope="module", params=list_trackers())
def tracker(request: pytest.FixtureRequest) -> Tracker:
    config = get_config(request.param)
    torch.manual_seed(0)
    network = build_network(config)
    randomise_normalisation(network, torch.Generator().manual_seed(1))
    return Tracker(config, network)


@pytest.fixture(scope="module")
def streams_run(tracker: Tracker) -> StreamsRun:
    generator = torch.Generator().manual_seed(2)
    crop_z = crops(generator, BATCH, tracker.config.crop.exemplar_size).float()
    crop_x = crops(generator, BATCH, SMALL_SEARCH_SIDE).float()
    box_prior = box_priors(generator, BATCH)
    template, search = TemplateStage(tracker.network), SearchStage(tracker.network)
    with torch.inference_mode():
        batch_embedding = template(crop_z, box_prior)
        batch_outputs = search(batch_embedding, crop_x)
        single_embeddings = [
            template(crop_z[row : row + 1], box_prior[row : row + 1]) for row in range(BATCH)
        ]
        single_outputs = [search(single_embeddings[row], crop_x[row : row + 1]) for row in range(BATCH)]
    return StreamsRun(
        crop_z.to(torch.uint8),
        box_prior,
        crop_x.to(torch.uint8),
        batch_embedding,
        batch_outputs,
        single_embeddings,
        single_outputs,
    )


# --- tests -----------------------------------------------------------------------------------------------


def test_state_dict_has_the_reference_layout(tracker: Tracker) -> None:
    state = {
        key: tuple(value.shape)
        for key, value in tracker.network.state_dict().items()
        if not key.endswith("num_batches_tracked")  # optional in the reference checkpoints
    }
    expected = reference_layout(tracker.config)
    assert sorted(set(state) - set(expected)) == []
    assert sorted(set(expected) - set(state)) == []
    assert {key: shape for key, shape in state.items() if shape != expected[key]} == {}
    for key, shape in REFERENCE_ANCHORS.get(tracker.config.name, {}).items():
        assert state[key] == shape, key


def test_stages_return_contract_shapes_at_the_tracker_crop_sizes(tracker: Tracker) -> None:
    config, network = tracker
    generator = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        embedding = TemplateStage(network)(
            crops(generator, 1, config.crop.exemplar_size), box_priors(generator, 1)
        )
        outputs = SearchStage(network)(embedding, crops(generator, 1, config.crop.instance_size))
    assert embedding.dtype == torch.float32
    assert embedding.shape == (1, network.embedding_dim)
    if config.name in EMBEDDING_DIMS:
        assert network.embedding_dim == EMBEDDING_DIMS[config.name]
    score = config.crop.score_size
    anchors = config.head.anchor_num
    expected_channels = {
        "siamrpn": {"cls": 2 * anchors, "loc": 4 * anchors},
        "siamban": {"cls": 2, "loc": 4},
        "siamcar": {"cls": 2, "loc": 4, "cen": 1},
        "siamfc": {"response": 1},
    }[config.family]
    assert network.search_output_names == tuple(expected_channels)
    assert [tuple(output.shape) for output in outputs] == [
        (1, c, score, score) for c in expected_channels.values()
    ]
    for output in outputs:
        assert output.dtype == torch.float32
        assert torch.isfinite(output).all()


def test_score_sizes_of_the_reference_configs() -> None:
    assert get_config("siamrpnpp_r50").crop.score_size == 25
    assert get_config("siamrpnpp_mobilenetv2").crop.score_size == 25
    assert get_config("siamrpn_alex").crop.score_size == 21
    assert get_config("siamfc_alexnet").crop.score_size == 17


def test_batch_of_streams_equals_single_calls(streams_run: StreamsRun) -> None:
    run = streams_run
    # Different templates per row: a row correlated with another row's template would not match its call.
    assert not torch.allclose(run.single_embeddings[0], run.single_embeddings[1])
    # oneDNN picks its convolution algorithm, and so its summation order, by batch size: on AVX-512 CPUs
    # the deepest networks (SiamCAN R50) move by 1.6e-5 of their largest output. A row correlated with
    # another row's template would be off by the order of the output itself.
    for row in range(BATCH):
        assert_close_relative(run.batch_embedding[row], run.single_embeddings[row][0], 1e-4)
        for batched, single in zip(run.batch_outputs, run.single_outputs[row], strict=True):
            assert_close_relative(batched[row], single[0], 1e-4)


def test_uint8_crops_equal_the_same_float_crops(tracker: Tracker, streams_run: StreamsRun) -> None:
    run = streams_run
    with torch.inference_mode():
        embedding = TemplateStage(tracker.network)(run.crop_z[:1], run.box_prior[:1])
        outputs = SearchStage(tracker.network)(embedding, run.crop_x[:1])
    assert_close_relative(embedding, run.single_embeddings[0], 1e-6)
    for from_uint8, from_float in zip(outputs, run.single_outputs[0], strict=True):
        assert_close_relative(from_uint8, from_float, 1e-6)


def test_scripted_stages_equal_eager(tracker: Tracker, streams_run: StreamsRun) -> None:
    run = streams_run
    template, search = script_stages(tracker.network)
    with torch.inference_mode():
        embedding = template(run.crop_z[:2], run.box_prior[:2])
        outputs = search(embedding, run.crop_x[:2])
    assert isinstance(outputs, tuple)
    # Freezing folds batch norms into the convolutions, which moves results by a few ulps.
    assert_close_relative(embedding, run.batch_embedding[:2], 1e-4)
    for scripted, eager in zip(outputs, run.batch_outputs, strict=True):
        assert_close_relative(scripted, eager[:2], 1e-4)


def test_bf16_stages_are_close_to_fp32(tracker: Tracker, streams_run: StreamsRun) -> None:
    if not NATIVE_BF16 and tracker.config.backbone.kind not in CHEAP_BACKBONES:
        pytest.skip("bf16 is emulated on this CPU: too slow for this backbone")
    run = streams_run
    with torch.inference_mode():
        embedding = TemplateStage(tracker.network, Precision.BF16)(run.crop_z[:1], run.box_prior[:1])
        outputs = SearchStage(tracker.network, Precision.BF16)(embedding, run.crop_x[:1])
    assert embedding.dtype == torch.float32
    assert_close_relative(embedding, run.single_embeddings[0], 0.05)
    for reduced, full in zip(outputs, run.single_outputs[0], strict=True):
        assert reduced.dtype == torch.float32
        assert torch.isfinite(reduced).all()
        # No division: DCFNet's centerness output is all zeros (its head has none) and must stay zeros.
        assert float((reduced - full).norm()) <= 0.05 * float(full.norm())
    assert all(p.dtype == torch.float32 for p in tracker.network.parameters()), "the network was converted"


def test_depthwise_correlation_pairs_each_row_with_its_own_template() -> None:
    generator = torch.Generator().manual_seed(4)
    search = torch.randn(3, 4, 9, 9, generator=generator)
    kernel = torch.randn(3, 4, 3, 3, generator=generator)
    response = xcorr_depthwise(search, kernel)
    assert response.shape == (3, 4, 7, 7)
    for row in range(3):
        expected = nn.functional.conv2d(search[row : row + 1], kernel[row].unsqueeze(1), groups=4)
        torch.testing.assert_close(response[row : row + 1], expected)


def test_full_correlation_sums_channels_per_row() -> None:
    generator = torch.Generator().manual_seed(5)
    search = torch.randn(3, 4, 9, 9, generator=generator)
    kernel = torch.randn(3, 4, 3, 3, generator=generator)
    response = xcorr_full(search, kernel)
    assert response.shape == (3, 1, 7, 7)
    for row in range(3):
        expected = nn.functional.conv2d(search[row : row + 1], kernel[row : row + 1])
        torch.testing.assert_close(response[row : row + 1], expected)


def test_neck_crops_the_centre_7x7_of_template_maps_only() -> None:
    layer = AdjustLayer(8, 4, center_size=7).eval()
    template_map = torch.randn(1, 8, 15, 15)
    search_map = torch.randn(1, 8, 21, 21)
    with torch.inference_mode():
        torch.testing.assert_close(layer(template_map), layer.downsample(template_map)[:, :, 4:11, 4:11])
        assert layer(search_map).shape == (1, 4, 21, 21)


def test_small_staged_backbone_returns_the_maps_its_used_layers_number() -> None:
    # Maps 1..5: stage 1 (stride 4), stage 2, then the conv4..conv6 levels (stride 8), at DCFNet's sides.
    torch.manual_seed(6)
    backbone = SmallStagedBackbone((1, 2, 3, 4, 5)).eval()
    randomise_normalisation(backbone, torch.Generator().manual_seed(7))
    crop = crops(torch.Generator().manual_seed(8), 2, 191).float()
    with torch.inference_mode():
        every = backbone(crop)
        final = backbone.last_layers(backbone.stage2(backbone.stage1(crop)))
        backbone.used_layers = [5, 3]
        picked = backbone(crop)
    assert [tuple(m.shape) for m in every] == [(2, 16, 47, 47)] + [(2, 32, 23, 23)] * 4
    assert backbone.output_sides(191) == (47, 23)
    assert [backbone.output_sides(side) for side in (127, 255)] == [(31, 15), (63, 31)]
    torch.testing.assert_close(picked, [every[4], every[2]])
    torch.testing.assert_close(final, every[4])
    assert all(not torch.allclose(every[level], every[level + 1]) for level in (2, 3))
    for used_layers in [(0, 1), (3, 6), ()]:
        with pytest.raises(ValueError, match=r"numbered 1\.\.5"):
            SmallStagedBackbone(used_layers)
