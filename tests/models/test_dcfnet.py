"""DCFNet: the staged correlation-fusion, the template pieces, SiamCAR post-processing without centerness,
the checkpoint -> package -> tracker path, and its two training stages."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from siamstream.config import CARHyper, CropConfig, Family
from siamstream.nn.dcfnet import DCFNetwork
from siamstream.nn.network import build_network
from siamstream.nn.staged_correlation import CorrelationFusion
from siamstream.registry import get_config
from siamstream.tracking.car import car_update
from siamstream.training import build_objective
from siamstream.training.losses import BOX_LOSSES
from siamstream.training.objectives_dcf_can import (
    DCFObjective,
    DCFPretrainObjective,
    dcfnet_finetuning_config,
    dcfnet_pretraining_config,
)
from siamstream.training.schedule import apply_backbone_schedule, epoch_lr
from tests.models.package_round_trip import track_through_package, trained_like_network

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

TEMPLATE_SIDE = 127
# A small search crop: stage maps 35 and 17, wider than the template's (31 and 15); score map 11.
SEARCH_SIDE = 143
# The template embedding's pieces (per stream): stage-1 map 64x31x31, stage-2 map 512x15x15, kernel 256x7x7.
STAGE1 = slice(0, 64 * 31 * 31)
STAGE2 = slice(STAGE1.stop, STAGE1.stop + 512 * 15 * 15)
KERNEL = slice(STAGE2.stop, STAGE2.stop + 256 * 7 * 7)


@pytest.fixture(scope="module")
def dcfnet() -> DCFNetwork:
    network = trained_like_network(get_config("dcfnet_r50"), seed=0)
    assert isinstance(network, DCFNetwork)
    return network


def crops(seed: int, side: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, side, side), generator=generator).float()


def test_correlation_fusion_by_hand() -> None:
    fusion = CorrelationFusion(2).eval()  # fresh batch norm: identity up to its eps
    search = torch.stack([torch.arange(1.0, 17.0).reshape(4, 4), torch.ones(4, 4)]).repeat(2, 1, 1, 1)
    diagonal = torch.eye(3)
    template = torch.stack(
        [torch.stack([diagonal, torch.full((3, 3), 2.0)]), torch.stack([torch.zeros(3, 3), torch.ones(3, 3)])]
    )
    with torch.inference_mode():
        fused = fusion(search, template)
    # Row 0, channel 0: the 2x2 valid correlation s[i,j] + s[i+1,j+1] + s[i+2,j+2] = [[18, 21], [30, 33]]
    # belongs to the windows' centre cells (1..2, 1..2); the border cells get nothing.
    expected_row0_c0 = search[0, 0].clone()
    expected_row0_c0[1:3, 1:3] += torch.tensor([[18.0, 21.0], [30.0, 33.0]])
    torch.testing.assert_close(fused[0, 0], expected_row0_c0, rtol=1e-5, atol=1e-4)
    # Channel 1 correlates with its own kernel only: 9 x 2 in row 0 and 9 x 1 in row 1, on the centre cells.
    for row, added in ((0, 18.0), (1, 9.0)):
        expected = torch.ones(4, 4)
        expected[1:3, 1:3] += added
        torch.testing.assert_close(fused[row, 1], expected, rtol=1e-5, atol=1e-4)
    # Row 1 has a zero kernel in channel 0: its search map passes unchanged (rows are not mixed).
    torch.testing.assert_close(fused[1, 0], search[1, 0], rtol=1e-5, atol=1e-4)


def test_correlation_fusion_scales_the_response_by_its_batch_norm() -> None:
    fusion = CorrelationFusion(1).eval()
    with torch.no_grad():
        fusion.bn.weight.fill_(0.5)
        fusion.bn.bias.fill_(1.0)
    search = torch.ones(1, 1, 4, 4)
    with torch.inference_mode():
        fused = fusion(search, torch.ones(1, 1, 3, 3))  # 2x2 responses of 9, on cells (1..2, 1..2)
    expected = torch.ones(1, 1, 4, 4)
    expected[..., 1:3, 1:3] += 9 * 0.5 / math.sqrt(1 + 1e-5) + 1.0
    torch.testing.assert_close(fused, expected)


@pytest.mark.parametrize(("template_side", "search_side"), [(31, 63), (15, 31)])  # stage 1, stage 2
@pytest.mark.parametrize(("row_offset", "col_offset"), [(0, 0), (0, 4), (-4, 0), (8, -8), (-8, 4)])
def test_correlation_fusion_highlights_the_template_where_it_is(
    template_side: int, search_side: int, row_offset: int, col_offset: int
) -> None:
    # A random template pattern pasted into an empty search map with its centre `offset` cells from the
    # search centre. By Cauchy-Schwarz no other window correlates as much with the template as the one
    # holding it exactly, so the added response must peak on the pattern's centre cell.
    generator = torch.Generator().manual_seed(template_side + 10 * row_offset + col_offset)
    template = torch.randn(1, 2, template_side, template_side, generator=generator)
    centre = search_side // 2
    row, col = centre + row_offset, centre + col_offset
    half = template_side // 2
    search = torch.zeros(1, 2, search_side, search_side)
    search[..., row - half : row + half + 1, col - half : col + half + 1] = template
    fusion = CorrelationFusion(2).eval()
    with torch.inference_mode():
        added = (fusion(search, template) - search).sum(1)[0]
    assert added.shape == (search_side, search_side)
    peak = int(added.argmax())
    assert divmod(peak, search_side) == (row, col)


def test_template_embedding_holds_every_staged_template_map(dcfnet: DCFNetwork) -> None:
    crop_z = crops(1, TEMPLATE_SIDE)
    with torch.inference_mode():
        embedding = dcfnet.template_embedding(crop_z, torch.tensor([[40.0, 50.0]]))
        stage1, stage2, final = dcfnet.backbone(crop_z)
    assert (stage1.shape, stage2.shape, final.shape) == ((1, 64, 31, 31), (1, 512, 15, 15), (1, 256, 15, 15))
    expected = torch.cat([stage1.flatten(1), stage2.flatten(1), final[:, :, 4:11, 4:11].flatten(1)], 1)
    assert embedding.shape == (1, KERNEL.stop)
    torch.testing.assert_close(embedding, expected)


def test_every_staged_template_map_changes_the_search_output(dcfnet: DCFNetwork) -> None:
    crop_x = crops(2, SEARCH_SIDE)
    box_prior = torch.tensor([[40.0, 50.0]])
    with torch.inference_mode():
        embedding = dcfnet.template_embedding(crops(3, TEMPLATE_SIDE), box_prior)
        other = dcfnet.template_embedding(crops(4, TEMPLATE_SIDE), box_prior)
        pieces = {"stage 1": STAGE1, "stage 2": STAGE2, "kernel": KERNEL}
        reference = dcfnet.search_outputs(embedding, crop_x)
        assert torch.equal(dcfnet.search_outputs(embedding.clone(), crop_x)[0], reference[0])
        for name, piece in pieces.items():
            mixed = embedding.clone()
            mixed[:, piece] = other[:, piece]  # only this template map comes from another target
            cls, loc, _ = dcfnet.search_outputs(mixed, crop_x)
            assert float((cls - reference[0]).abs().max()) > 1e-3 * float(reference[0].abs().max()), name
            assert not torch.allclose(loc, reference[1]), name
    assert reference[0].shape == (1, 2, 11, 11)  # (143 crop: final search map 17) - 7 + 1


def test_search_with_the_template_branch_maps_differs_from_the_unfused_backbone(dcfnet: DCFNetwork) -> None:
    crop_x = crops(5, SEARCH_SIDE)
    with torch.inference_mode():
        embedding = dcfnet.template_embedding(crops(6, TEMPLATE_SIDE), torch.tensor([[40.0, 50.0]]))
        stage1 = embedding[:, STAGE1].reshape(1, 64, 31, 31)
        stage2 = embedding[:, STAGE2].reshape(1, 512, 15, 15)
        fused = dcfnet.backbone.fused(crop_x, [stage1, stage2])
        plain = dcfnet.backbone(crop_x)[2]
    assert fused.shape == plain.shape == (1, 256, 17, 17)
    assert float((fused - plain).abs().mean()) > 1e-2 * float(plain.abs().mean())


def test_centerness_output_is_flat(dcfnet: DCFNetwork) -> None:
    with torch.inference_mode():
        embedding = dcfnet.template_embedding(crops(7, TEMPLATE_SIDE), torch.tensor([[40.0, 50.0]]))
        _, loc, cen = dcfnet.search_outputs(embedding, crops(8, SEARCH_SIDE))
    assert cen.shape == (1, 1, 11, 11) and torch.equal(cen, torch.zeros_like(cen))
    assert bool((loc > 0).all())


S = 25
HYPER = CARHyper(family=Family.SIAMCAR, penalty_k=0.2, window_influence=0.45, lr=0.35)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_flat_centerness_leaves_the_choice_to_the_penalised_classification() -> None:
    # A (12, 15) p=0.9 and B (12, 12) p=0.8, 220x220 crop px everywhere (no size penalty for a 110x110
    # target at scale_z 2). B wins the windowed coarse peak, A (3 cells away, inside B's region) the fine one.
    cls = np.full((1, 2, S, S), 0.0, np.float32)
    cls[0, 1] = logit(0.001)
    cls[0, 1, 12, 15] = logit(0.9)
    cls[0, 1, 12, 12] = logit(0.8)
    loc = np.full((1, 4, S, S), 110, np.float32)
    target = (300.0, 200.0, 110.0, 110.0)
    flat = car_update(
        HYPER, CropConfig(), (cls, loc, np.zeros((1, 1, S, S), np.float32)), target, 2.0, (640, 480)
    )
    ones = car_update(
        HYPER, CropConfig(), (cls, loc, np.ones((1, 1, S, S), np.float32)), target, 2.0, (640, 480)
    )
    assert flat == ones
    assert flat.cx > 300 + 5  # moved right, towards A
    # A SiamCAR centerness map that halves A (min-max normalised: B 1, A 0.5, elsewhere 0.5) picks B.
    cen = np.full((1, 1, S, S), 0.5, np.float32)
    cen[0, 0, 12, 12] = 1.0
    cen[0, 0, 0, 0] = 0.0
    centred = car_update(HYPER, CropConfig(), (cls, loc, cen), target, 2.0, (640, 480))
    assert centred.cx == pytest.approx(300 + (96 + 31 - 127) / 2, abs=1)
    assert flat.score == pytest.approx(0.9, abs=0.02) and centred.score == pytest.approx(0.8, abs=0.02)


def test_checkpoint_package_and_offline_tracker(tmp_path: Path) -> None:
    trip = track_through_package("dcfnet_r50", tmp_path)
    assert trip.package.meta.search_outputs == ("cls", "loc", "cen")
    assert trip.package.meta.embedding_dim == KERNEL.stop
    assert trip.package.config == get_config("dcfnet_r50")
    assert [r.frame_index for r in trip.packaged] == [0, 1, 2]
    for packaged, eager in zip(trip.packaged[1:], trip.eager[1:], strict=True):
        assert packaged.bbox == pytest.approx(eager.bbox, abs=1e-2)
        assert packaged.score == pytest.approx(eager.score, abs=1e-4)
        assert (
            packaged.score is not None
            and 0 <= packaged.score <= 1
            and all(math.isfinite(v) for v in packaged.bbox)
        )


def test_build_rejects_a_partial_staged_backbone() -> None:
    config = get_config("dcfnet_r50")
    partial = config.model_copy(update={"backbone": config.backbone.model_copy(update={"used_layers": (1,)})})
    with pytest.raises(ValueError, match="fuses after the stages"):
        build_network(partial)


def gradient_sum(network: torch.nn.Module, parameter: str) -> float:
    """The summed absolute gradient of `network`'s `parameter` (a dotted name) after a backward pass."""
    grad = network.get_parameter(parameter).grad
    assert grad is not None, parameter
    return float(grad.abs().sum())


def batch_labels(labels: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(value)[None] for name, value in labels.items()}


def test_finetuning_trains_the_head_and_the_last_two_layers_with_cross_entropy_and_log_iou() -> None:
    tracker, training = get_config("dcfnet_r50"), dcfnet_finetuning_config()
    objective = build_objective(tracker, training)
    assert isinstance(objective, DCFObjective) and objective.box_loss is BOX_LOSSES["log_iou"]
    network = trained_like_network(tracker, seed=1).train()
    trainable = apply_backbone_schedule(network.backbone, training.backbone, epoch=0)
    assert trainable == 2 * (256 * 256 * 3 * 3) + 2 * 2 * 256  # conv5, conv6 and their batch norms
    # xyxy crop px around the crop centre: inside it are x in -24..24 and y in -16..16 (7 x 5 points).
    labels = objective.labels(np.array([-30.0, -20.0, 30.0, 20.0]), 11, True, np.random.default_rng(0))
    assert int((labels["cls"] == 1).sum()) == 35 and int((labels["cls"] == 0).sum()) == 11 * 11 - 35
    outputs = objective.outputs(
        network, crops(9, TEMPLATE_SIDE), crops(10, SEARCH_SIDE), torch.tensor([[60.0, 40.0]])
    )
    losses = objective.losses(outputs, batch_labels(labels))
    assert set(losses) == {"cls", "loc", "total"}  # no centerness term
    torch.testing.assert_close(losses["total"], losses["cls"] + losses["loc"])
    losses["total"].backward()
    conv1 = network.get_parameter("backbone.conv1.weight")
    assert conv1.grad is None and not conv1.requires_grad
    assert gradient_sum(network, "backbone.conv6.weight") > 0
    assert gradient_sum(network, "car_head.bbox_pred.weight") > 0


def test_finetuning_runs_the_papers_150_100_50_epoch_schedule() -> None:
    training = dcfnet_finetuning_config()
    lrs = [epoch_lr(training.lr, epoch, training.epochs) for epoch in range(training.epochs)]
    np.testing.assert_allclose(lrs[:150], 0.01)
    np.testing.assert_allclose(lrs[150:250], 0.001)
    np.testing.assert_allclose(lrs[250:], 0.0001)
    assert len(lrs) == 300


def test_pretraining_is_siamfc_style_on_the_whole_backbone() -> None:
    tracker, training = get_config("dcfnet_r50"), dcfnet_pretraining_config()
    objective = build_objective(tracker, training)
    assert isinstance(objective, DCFPretrainObjective)
    network = trained_like_network(tracker, seed=2).train()
    assert isinstance(network, DCFNetwork)
    apply_backbone_schedule(network.backbone, training.backbone, epoch=0)
    template, search = crops(11, TEMPLATE_SIDE), crops(12, SEARCH_SIDE)
    outputs = objective.outputs(network, template, search, torch.tensor([[60.0, 40.0]]))
    assert outputs["response"].shape == (1, 1, 11, 11)
    with torch.no_grad():
        search_map, kernel = network.fused_search(
            network.template_embedding(template, torch.tensor([[60.0, 40.0]])), search
        )
        expected = torch.nn.functional.conv2d(search_map, kernel) * 0.001
    torch.testing.assert_close(
        outputs["response"].detach(), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max())
    )
    labels = objective.labels(np.array([-30.0, -20.0, 30.0, 20.0]), 11, True, np.random.default_rng(0))
    losses = objective.losses(outputs, batch_labels(labels))
    assert set(losses) == {"cls", "total"} and math.isfinite(float(losses["total"].detach()))
    losses["total"].backward()
    assert gradient_sum(network, "backbone.conv1.weight") > 0
    assert gradient_sum(network, "backbone.fusion1.bn.weight") > 0
    assert (
        network.get_parameter("car_head.cls_logits.weight").grad is None
    )  # the SiamCAR head is not part of stage 1


def test_small_dcfnet_takes_its_pieces_and_widths_from_the_small_backbone() -> None:
    # dcfnet_small: the same template pieces from the small staged backbone, 16x31x31 and 32x15x15 stage
    # maps and a 32x7x7 kernel; the same search geometry (a 143 crop gives 17x17 maps and 11x11 outputs).
    network = trained_like_network(get_config("dcfnet_small"), seed=3)
    assert isinstance(network, DCFNetwork)
    backbone = network.backbone
    crop_z, crop_x = crops(13, TEMPLATE_SIDE), crops(14, SEARCH_SIDE)
    with torch.inference_mode():
        embedding = network.template_embedding(crop_z, torch.tensor([[40.0, 50.0]]))
        stage1 = backbone.stage1(crop_z)
        stage2 = backbone.stage2(stage1)
        final = backbone.last_layers(stage2)
        fused = backbone.fused(crop_x, [stage1, stage2])
        plain = backbone.last_layers(backbone.stage2(backbone.stage1(crop_x)))
        cls, loc, cen = network.search_outputs(embedding, crop_x)
    assert (stage1.shape, stage2.shape, final.shape) == ((1, 16, 31, 31), (1, 32, 15, 15), (1, 32, 15, 15))
    expected = torch.cat([stage1.flatten(1), stage2.flatten(1), final[:, :, 4:11, 4:11].flatten(1)], 1)
    assert network.embedding_dim == 16 * 31 * 31 + 32 * 15 * 15 + 32 * 7 * 7
    torch.testing.assert_close(embedding, expected)
    assert fused.shape == plain.shape == (1, 32, 17, 17)
    assert float((fused - plain).abs().mean()) > 1e-2 * float(plain.abs().mean())
    assert (cls.shape, loc.shape) == ((1, 2, 11, 11), (1, 4, 11, 11))
    assert torch.equal(cen, torch.zeros(1, 1, 11, 11))
    # The paper's fine-tuning recipe finds the small backbone's last two conv layers by the same names.
    trainable = apply_backbone_schedule(backbone, dcfnet_finetuning_config().backbone, epoch=0)
    assert trainable == 2 * (32 * 32 * 3 * 3) + 2 * 2 * 32


def test_build_rejects_the_small_backbone_without_its_fusions() -> None:
    config = get_config("dcfnet_small")
    backbone = config.backbone.model_copy(update={"kind": "small_staged"})
    plain = config.model_copy(update={"backbone": backbone})
    with pytest.raises(ValueError, match="correlation-fusions"):
        build_network(plain)
