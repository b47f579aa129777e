"""The papers' ablation switches: each changes what its paper's ablation changes and nothing else, and
every ablation arm of the study plan trains, exports and tracks.

- DCFNet (paper 001, Table III): `fusion_stages` () / (1,) / (2,) equal the full network with the missing
  correlation-fusions skipped by hand.
- SiamCAN (paper 002, Tables 3-4): no channel attention equals channel weights of 1, no spatial attention
  equals an identity in its place; circle labels and the centerness-weighted box loss against their
  definitions; GIoU and DIoU in SiamCAN's objective.
- ACM (CVPR 2021): without the prior the template vector is the template term alone, whatever the box;
  the depth-wise control has ACM's parameter count within 5 %.
- SiamMargin (paper 003): margin and template update each switched off in training and in tracking.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from siamstream.checkpoint import load_weights, read_checkpoint
from siamstream.config import TemplateUpdateConfig, TrackerConfig, merge_fields
from siamstream.data.synthetic import SequenceSpec, generate_sequence
from siamstream.nn.correlation import xcorr_depthwise
from siamstream.nn.dcfnet import DCFNetwork, center_crop
from siamstream.nn.matched_xcorr import MatchedXCorr, mix_side
from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.nn.siamcan import CANLevel, SiamCANNetwork
from siamstream.nn.stages import script_stages
from siamstream.package import TrackerPackage, export_package, read_package
from siamstream.registry import get_config
from siamstream.runner import PackageRunner
from siamstream.study.plan import StudyPlan, read_plan
from siamstream.tracking.offline import OfflineTracker
from siamstream.training import build_objective, open_training_data, train
from siamstream.training.config import TrainingConfig, with_schedule
from siamstream.training.labels import SampleCaps, circle_labels
from siamstream.training.objectives import RPNMarginObjective, RPNObjective
from siamstream.training.objectives_dcf_can import siamcan_training_config
from siamstream.training.trainer import TrainingRun
from tests.models.package_round_trip import trained_like_network

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

PLAN = read_plan(Path(__file__).resolve().parents[2] / "bench" / "papers_study.json")
ABLATION_ARMS = [arm.name for arm in PLAN.arms if arm.config or arm.training]
SEARCH_SIDE = 191  # the study's search crop: score map 17
PRIOR = torch.tensor([[40.0, 60.0]])


def variant(name: str, **head: object) -> TrackerConfig:
    """The registered tracker `name` with head fields replaced, as a study arm replaces them."""
    return TrackerConfig.model_validate(
        merge_fields(get_config(name).model_dump(mode="json"), {"head": head})
    )


def crops(seed: int, side: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, side, side), generator=generator).float()


def switched_and_full(name: str, **head: object) -> tuple[SiameseNetwork, SiameseNetwork, list[str]]:
    """(the network with `head` switched, the default network carrying its weights, the default
    network's keys the switched one does not have)."""
    switched = trained_like_network(variant(name, **head), seed=0)
    full = build_network(get_config(name))
    missing, unexpected = full.load_state_dict(switched.state_dict(), strict=False)
    assert unexpected == [] and set(missing) <= set(full.state_dict())
    return switched, full, sorted(set(full.state_dict()) - set(switched.state_dict()))


def parameter_count(network: nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for name, p in network.named_parameters() if name.startswith(prefix))


# --- DCFNet: CF-1st, CF-2nd, Baseline --------------------------------------------------------------------


@pytest.mark.parametrize("stages", [(), (1,), (2,)])
def test_dcfnet_with_fewer_fusions_equals_skipping_them_by_hand(stages: tuple[int, ...]) -> None:
    switched, full, missing = switched_and_full("dcfnet_small", fusion_stages=stages)
    skipped = tuple(f"backbone.fusion{stage}." for stage in (1, 2) if stage not in stages)
    assert missing == sorted(key for key in full.state_dict() if key.startswith(skipped))
    crop_z, crop_x = crops(1, 127), crops(2, SEARCH_SIDE)
    assert isinstance(full, DCFNetwork)
    backbone = full.backbone
    with torch.inference_mode():
        embedding = switched.template_embedding(crop_z, PRIOR)
        cls, loc, cen = switched.search_outputs(embedding, crop_x)
        template1 = backbone.stage1(crop_z)
        template2 = backbone.stage2(template1)
        kernel = center_crop(backbone.last_layers(template2), 7)
        search = backbone.stage1(crop_x)
        if 1 in stages:
            assert backbone.fusion1 is not None
            search = backbone.fusion1(search, template1)
        search = backbone.stage2(search)
        if 2 in stages:
            assert backbone.fusion2 is not None
            search = backbone.fusion2(search, template2)
        expected_cls, expected_loc = full.car_head(xcorr_depthwise(backbone.last_layers(search), kernel))
        both_fused = full.search_outputs(full.template_embedding(crop_z, PRIOR), crop_x)[0]
    # The embedding keeps the template maps of the fused stages only, then the kernel.
    kept = [piece for stage, piece in ((1, template1), (2, template2)) if stage in stages] + [kernel]
    torch.testing.assert_close(embedding, torch.cat([piece.flatten(1) for piece in kept], 1))
    assert switched.embedding_dim == embedding.size(1)
    torch.testing.assert_close(cls, expected_cls, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loc, expected_loc, rtol=1e-5, atol=1e-5)
    assert cls.shape == (1, 2, 17, 17) and not cen.any()
    assert not torch.allclose(cls, both_fused, rtol=1e-3, atol=1e-3)


def test_fusion_stages_are_dcfnet_stages_in_order() -> None:
    for stages in [(2, 1), (1, 1), (3,)]:
        with pytest.raises(ValueError, match="fusion_stages"):
            variant("dcfnet_small", fusion_stages=stages)
    with pytest.raises(ValueError, match="DCFNet switch"):
        variant("siamcar_small", fusion_stages=(1,))


# --- SiamCAN: attention, labels, box loss --------------------------------------------------------------

CAN_CHANNELS = 32
CAN_KERNEL = CAN_CHANNELS * 5 * 5  # one 5x5 kernel of the 32-wide small SiamCAN


def test_siamcan_without_channel_attention_weights_every_channel_by_one() -> None:
    switched, full, missing = switched_and_full("siamcan_small", channel_attention=False)
    assert missing == [f"head.box{level}.channel_attention.conv.weight" for level in (2, 3, 4)]
    crop_z, crop_x = crops(3, 127), crops(4, SEARCH_SIDE)
    level_values = 2 * CAN_KERNEL + CAN_CHANNELS
    with torch.inference_mode():
        embedding = switched.template_embedding(crop_z, PRIOR)
        full_embedding = full.template_embedding(crop_z, PRIOR)
        unweighted = full_embedding.clone()
        for level in range(3):
            unweighted[:, level * level_values + 2 * CAN_KERNEL : (level + 1) * level_values] = 1.0
        outputs = switched.search_outputs(embedding, crop_x)
        expected = full.search_outputs(unweighted, crop_x)
        attended = full.search_outputs(full_embedding, crop_x)
    # The embedding is the full one without the channel weights: the two kernels of each level.
    kernels = [
        full_embedding[:, level * level_values : level * level_values + 2 * CAN_KERNEL] for level in range(3)
    ]
    assert torch.equal(embedding, torch.cat(kernels, 1)) and switched.embedding_dim == 6 * CAN_KERNEL
    for output, reference in zip(outputs, expected, strict=True):
        torch.testing.assert_close(output, reference, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(outputs[0], attended[0], rtol=1e-3, atol=1e-3)


def test_siamcan_without_spatial_attention_passes_the_correlation_as_it_is() -> None:
    switched, full, missing = switched_and_full("siamcan_small", spatial_attention=False)
    assert missing == sorted(
        f"head.box{level}.{branch}.spatial_attention.conv.weight"
        for level in (2, 3, 4)
        for branch in ("cls", "loc")
    )
    crop_z, crop_x = crops(5, 127), crops(6, SEARCH_SIDE)
    with torch.inference_mode():
        embedding = switched.template_embedding(crop_z, PRIOR)
        assert torch.equal(embedding, full.template_embedding(crop_z, PRIOR))
        outputs = switched.search_outputs(embedding, crop_x)
        attended = full.search_outputs(embedding, crop_x)
        assert isinstance(full, SiamCANNetwork)
        for level in full.head.values():
            assert isinstance(level, CANLevel)
            # The test swaps each attention for an identity: not a type the network declares.
            level.cls.spatial_attention = nn.Identity()  # type: ignore[assignment]
            level.loc.spatial_attention = nn.Identity()  # type: ignore[assignment]
        expected = full.search_outputs(embedding, crop_x)
    for output, reference in zip(outputs, expected, strict=True):
        torch.testing.assert_close(output, reference, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(outputs[0], attended[0], rtol=1e-3, atol=1e-3)


def test_attention_switches_belong_to_siamcan() -> None:
    with pytest.raises(ValueError, match="SiamCAN switches"):
        variant("siamban_small", spatial_attention=False)


def test_circle_labels_are_positive_inside_c2_and_negative_outside_twice_its_radius() -> None:
    box = np.array([-100.0, -30.0, 60.0, 50.0])  # 160 x 80 crop px, centre (-20, 10)
    everything = SampleCaps(positives=10_000, negatives=10_000, negatives_in_negative_pair=10_000)
    labels = circle_labels(box, 8, 25, True, np.random.default_rng(0), everything)
    radius = 80 * 40 / math.sqrt(80**2 + 40**2)  # (w/2 * h/2) / sqrt((w/2)^2 + (h/2)^2) = 35.8 px
    points = np.arange(-96.0, 97.0, 8.0)
    distance = np.hypot(points[None, :] + 20, points[:, None] - 10)
    np.testing.assert_array_equal(labels.cls == 1, distance < radius)
    np.testing.assert_array_equal(labels.cls == 0, distance > 2 * radius)
    assert 0 < int((labels.cls == 1).sum()) < int((labels.cls == -1).sum())
    negative_pair = circle_labels(box, 8, 25, False, np.random.default_rng(0), everything)
    np.testing.assert_array_equal(negative_pair.cls == 0, distance < radius)
    assert not (negative_pair.cls == 1).any()


def diou_by_hand(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1 - IoU + centre distance^2 / enclosing diagonal^2 of xyxy rows (no smoothing)."""
    inter_w = np.clip(
        np.minimum(predicted[:, 2], target[:, 2]) - np.maximum(predicted[:, 0], target[:, 0]), 0, None
    )
    inter_h = np.clip(
        np.minimum(predicted[:, 3], target[:, 3]) - np.maximum(predicted[:, 1], target[:, 1]), 0, None
    )
    inter = inter_w * inter_h
    area = (predicted[:, 2] - predicted[:, 0]) * (predicted[:, 3] - predicted[:, 1])
    union = area + (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1]) - inter
    enclosing_w = np.maximum(predicted[:, 2], target[:, 2]) - np.minimum(predicted[:, 0], target[:, 0])
    enclosing_h = np.maximum(predicted[:, 3], target[:, 3]) - np.minimum(predicted[:, 1], target[:, 1])
    gap = ((predicted[:, :2] + predicted[:, 2:]) / 2 - (target[:, :2] + target[:, 2:]) / 2) ** 2
    return 1 - inter / union + gap.sum(1) / (enclosing_w**2 + enclosing_h**2)


def can_training(**labels: object) -> TrainingConfig:
    return with_schedule(siamcan_training_config(), {"labels": labels})


def test_ellipse_centerness_weights_each_positive_box_loss_by_its_centerness() -> None:
    tracker = get_config("siamcan_small")
    box = np.array([-70.0, -50.0, 90.0, 40.0])  # off-centre, so that the positives' losses differ
    weighted = build_objective(tracker, can_training(point_shape="ellipse_centerness"))
    plain = build_objective(tracker, can_training(point_shape="ellipse"))
    labels = weighted.labels(box, 17, True, np.random.default_rng(1))
    np.testing.assert_array_equal(labels["cls"], plain.labels(box, 17, True, np.random.default_rng(1))["cls"])
    batch = {name: torch.from_numpy(value)[None] for name, value in labels.items()}
    outputs = {"cls": torch.zeros(1, 2, 17, 17), "loc": torch.full((1, 4, 17, 17), 40.0)}  # 80x80 boxes
    rows, cols = np.nonzero(labels["cls"] == 1)
    points = (np.stack([cols, rows], 1) - 8) * 8.0  # (x, y) crop px of each positive cell
    horizontal = np.stack([points[:, 0] - box[0], box[2] - points[:, 0]])  # l, r
    vertical = np.stack([points[:, 1] - box[1], box[3] - points[:, 1]])  # t, b
    centerness = np.sqrt(horizontal.min(0) / horizontal.max(0) * vertical.min(0) / vertical.max(0))
    per_point = diou_by_hand(np.concatenate([points - 40, points + 40], 1), np.tile(box, (len(points), 1)))
    assert len(points) >= 3 and np.ptp(per_point) > 0.01
    expected_weighted = float((per_point * centerness).sum() / centerness.sum())
    assert float(weighted.losses(outputs, batch)["loc"]) == pytest.approx(expected_weighted, rel=1e-4)
    assert float(plain.losses(outputs, batch)["loc"]) == pytest.approx(float(per_point.mean()), rel=1e-4)


@pytest.mark.parametrize("box_loss", ["giou", "diou"])
def test_siamcan_objective_regresses_with_giou_or_diou(box_loss: str) -> None:
    training = with_schedule(siamcan_training_config(), {"loss": {"box_loss": box_loss}})
    objective = build_objective(get_config("siamcan_small"), training)
    labels = objective.labels(np.array([-100.0, -90.0, 100.0, 90.0]), 25, True, np.random.default_rng(0))
    batch = {name: torch.from_numpy(value)[None] for name, value in labels.items()}
    # Every predicted box is the target moved 5 px left and 4 px up: 195 x 176 overlap, 205 x 184 enclosing.
    shift = torch.tensor([5.0, 4.0, -5.0, -4.0])[None, :, None, None]
    losses = objective.losses({"cls": torch.zeros(1, 2, 25, 25), "loc": batch["ltrb"] + shift}, batch)
    inter, enclosing = 195 * 176, 205 * 184
    union = 2 * 200 * 180 - inter
    penalty = (enclosing - union) / enclosing if box_loss == "giou" else (5**2 + 4**2) / (205**2 + 184**2)
    assert float(losses["loc"]) == pytest.approx(1 - inter / union + penalty, rel=1e-4)


# --- ACM: the box-size prior and the parameter-matched control ------------------------------------------


@pytest.mark.parametrize("name", ["siamban_acm_small", "siamrpnpp_acm_small"])
def test_acm_without_prior_keeps_the_template_term_alone(name: str) -> None:
    switched, full, missing = switched_and_full(name, acm_box_prior=False)
    assert missing and missing == sorted(key for key in full.state_dict() if ".xorr_bbox." in key)
    crop_z, crop_x = crops(7, 127), crops(8, SEARCH_SIDE)
    other_prior = torch.tensor([[90.0, 20.0]])
    branches = [
        branch for level in getattr(full, name_of_head(full)).values() for branch in (level.cls, level.loc)
    ]
    with torch.inference_mode():
        embedding = switched.template_embedding(crop_z, PRIOR)
        outputs = switched.search_outputs(embedding, crop_x)
        assert torch.equal(embedding, switched.template_embedding(crop_z, other_prior))
        full_embedding = full.template_embedding(crop_z, PRIOR)
        prior_terms = torch.cat([branch.xorr_bbox(PRIOR) for branch in branches], 1)
        expected = full.search_outputs(embedding, crop_x)
        with_prior = full.search_outputs(full_embedding, crop_x)
    torch.testing.assert_close(embedding, full_embedding - prior_terms, rtol=1e-5, atol=1e-5)
    for output, reference in zip(outputs, expected, strict=True):
        torch.testing.assert_close(output, reference, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(outputs[0], with_prior[0], rtol=1e-3, atol=1e-3)


def name_of_head(network: SiameseNetwork) -> str:
    return "rpn_head" if hasattr(network, "rpn_head") else "head"


def matched_head_parameters(
    channels: int, cls_channels: int, loc_channels: int, levels: int, ban: bool
) -> int:
    """Per branch: conv_kernel and conv_search (3x3 conv, BN), the 7x7 mix (with bias), xorr_activate (BN,
    3x3 conv with bias, BN) and head (3x3 conv with bias, BN, 3x3 conv with bias); then the fusion weights."""

    def branch(out: int) -> int:
        adjust = 2 * (9 * channels**2 + 2 * channels)
        mix = 49 * channels**2 + channels
        activate = 2 * channels + 9 * channels**2 + channels + 2 * channels
        head = 9 * channels**2 + channels + 2 * channels + 9 * channels * out + out
        return adjust + mix + activate + head

    fusion_weights = 2 * levels + (levels if ban else 0)  # cls_weight, loc_weight (and loc_scale)
    return levels * (branch(cls_channels) + branch(loc_channels)) + fusion_weights


@pytest.mark.parametrize(
    ("name", "cls_channels", "loc_channels"), [("siamrpnpp_acm_small", 10, 20), ("siamban_acm_small", 2, 4)]
)
def test_the_depthwise_control_has_acms_parameter_count(
    name: str, cls_channels: int, loc_channels: int
) -> None:
    acm = build_network(get_config(name))
    matched = build_network(variant(name, correlation="xcorr_matched"))
    plain = build_network(variant(name, correlation="xcorr"))
    head = name_of_head(acm)
    expected_head = matched_head_parameters(32, cls_channels, loc_channels, 3, ban=head == "head")
    assert parameter_count(matched, head) == expected_head
    assert abs(parameter_count(matched) - parameter_count(acm)) < 0.05 * parameter_count(acm)
    assert abs(parameter_count(matched, head) - parameter_count(acm, head)) < 0.05 * parameter_count(
        acm, head
    )
    # Plain depth-wise correlation has under a quarter of ACM's head weights: the control adds the rest.
    assert parameter_count(plain, head) < 0.25 * parameter_count(acm, head)
    # Same backbone and neck as ACM; the template is the depth-wise heads' kernels (conv_kernel outputs).
    assert [k for k in matched.state_dict() if not k.startswith(head)] == [
        k for k in acm.state_dict() if not k.startswith(head)
    ]
    with torch.inference_mode():
        embedding = matched.template_embedding(crops(9, 127), PRIOR)
        cls, loc = matched.search_outputs(embedding, crops(10, SEARCH_SIDE))
    assert embedding.shape == (1, 6 * 32 * 5 * 5)
    assert cls.shape == (1, cls_channels, 17, 17) and loc.shape == (1, loc_channels, 17, 17)


def test_matched_branch_correlates_depth_wise_then_mixes_with_the_matched_kernel() -> None:
    assert [mix_side(side) for side in (3, 5, 6)] == [5, 7, 9]  # 25 ~ 18, 49 ~ 50, 81 ~ 72
    torch.manual_seed(0)
    branch = MatchedXCorr(4, 3, kernel_side=5).eval()
    assert branch.xcorr_mix.kernel_size == (7, 7) and branch.xcorr_mix.padding == (3, 3)
    template, search = torch.randn(2, 4, 7, 7), torch.randn(2, 4, 31, 31)
    with torch.inference_mode():
        output = branch(branch.template_kernel(template), search)
        kernel, search_map = branch.conv_kernel(template), branch.conv_search(search)
        response = torch.zeros(2, 4, 25, 25)
        for row in range(2):
            for channel in range(4):
                window = search_map[row, channel].unfold(0, 5, 1).unfold(1, 5, 1)  # [25, 25, 5, 5]
                response[row, channel] = (window * kernel[row, channel]).sum((-1, -2))
        expected = branch.head(branch.xorr_activate(branch.xcorr_mix(response)))
    assert output.shape == (2, 3, 25, 25)
    torch.testing.assert_close(output, expected, rtol=1e-4, atol=1e-4)


def test_acm_switches_need_acm() -> None:
    with pytest.raises(ValueError, match="prior of ACM"):
        variant("siamban_small", acm_box_prior=False)
    with pytest.raises(ValueError, match="rpn and ban heads"):
        variant("siamcar_small", correlation="xcorr_matched")


# --- every ablation arm: two training steps, export, scripted stages, tracking --------------------------

TINY_SCHEDULE = {
    "epochs": 1,
    "batch_size": 2,
    "pairs_per_epoch": 4,
    "search_size": SEARCH_SIDE,
    "num_workers": 0,
}


@dataclass(frozen=True)
class TrainedArm:
    config: TrackerConfig
    training: TrainingConfig
    run: TrainingRun
    network: SiameseNetwork
    package: TrackerPackage


@pytest.fixture(scope="module")
def trained_arm(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], TrainedArm]:
    """An arm of the study plan trained two steps under its own recipe and exported, once per module."""
    sequences = open_training_data("synthetic:4", None)
    done: dict[str, TrainedArm] = {}

    def trained(name: str) -> TrainedArm:
        if name not in done:
            arm = PLAN.arm(name)
            config = arm.tracker_config()
            training = with_schedule(PLAN.training_config(arm, 0), TINY_SCHEDULE)
            out = tmp_path_factory.mktemp(name)
            run = train(config, training, sequences, out / "train", progress=False)
            network = build_network(config)
            load_weights(network, read_checkpoint(run.checkpoints[-1]).state_dict, config.name)
            package = export_package(network, config, out / "package")
            done[name] = TrainedArm(config, training, run, network, read_package(package.root))
        return done[name]

    return trained


def test_the_plan_has_an_arm_for_every_switch() -> None:
    switched = {
        name: (PLAN.arm(name).config.get("head", {}), PLAN.arm(name).training) for name in ABLATION_ARMS
    }
    heads = [head for head, _ in switched.values()]
    assert {tuple(head["fusion_stages"]) for head in heads if "fusion_stages" in head} == {(), (1,), (2,)}
    assert {"channel_attention", "spatial_attention", "acm_box_prior", "margin_supervision"} <= {
        key for head in heads for key in head
    }
    assert sum(head.get("correlation") == "xcorr_matched" for head in heads) == 2
    shapes = {training["labels"]["point_shape"] for _, training in switched.values() if "labels" in training}
    assert shapes == {"circle", "ellipse", "ellipse_centerness"}
    assert {"siammargin_margin_only", "siammargin_update_only", "siamcan_giou"} <= set(ABLATION_ARMS)


def test_an_arm_changes_its_recipe_under_the_shared_schedule() -> None:
    own = PLAN.training_config(PLAN.arm("siamcan"), 1)
    giou = PLAN.training_config(PLAN.arm("siamcan_giou"), 1)
    assert giou == own.model_copy(update={"loss": own.loss.model_copy(update={"box_loss": "giou"})})
    assert (own.epochs, own.seed, own.loss.box_loss) == (PLAN.schedule["epochs"], 1, "diou")
    plan = PLAN.model_dump(mode="json")
    broken_arms: list[tuple[dict[str, Any], str]] = [
        ({"training": {"epochs": 1}}, "shared schedule"),
        ({"training": {"labels": {"point_shape": "square"}}}, "point_shape"),
        ({"config": {"head": {"fusion_stages": [1]}}}, "DCFNet switch"),
    ]
    for arm, error in broken_arms:
        broken = {**plan, "arms": [*plan["arms"], {"name": "broken", "tracker": "siamcan_small", **arm}]}
        with pytest.raises(ValueError, match=error):
            StudyPlan.model_validate(broken)


@pytest.mark.parametrize("name", ABLATION_ARMS)
def test_every_ablation_arm_trains_two_steps_exports_and_tracks(
    name: str, trained_arm: Callable[[str], TrainedArm]
) -> None:
    arm = trained_arm(name)
    assert len(arm.run.step_losses) == 2
    for row in arm.run.step_losses:
        assert np.isfinite(list(row.values())).all() and row["total"] > 0, row
    template_stage, search_stage = script_stages(arm.network)
    crop_z, crop_x = crops(11, 127), crops(12, SEARCH_SIDE)
    with torch.inference_mode():
        embedding = arm.network.template_embedding(crop_z, PRIOR)
        torch.testing.assert_close(template_stage(crop_z, PRIOR), embedding, rtol=1e-4, atol=1e-4)
        eager = arm.network.search_outputs(embedding, crop_x)
        for scripted, reference in zip(search_stage(embedding, crop_x), eager, strict=True):
            torch.testing.assert_close(scripted, reference, rtol=1e-4, atol=1e-3)
    assert arm.package.meta.config == arm.config
    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=3, seed=4))
    tracker = OfflineTracker(arm.config, PackageRunner(arm.package))
    results = tracker.track_sequence(
        (sequence.frame(i) for i in range(3)), cast("Sequence[float]", sequence.init_box)
    )
    assert len(results) == 3 and all(math.isfinite(v) for result in results for v in result.bbox)


# --- SiamMargin: margin and template update switched off --------------------------------------------------


def test_siammargin_margin_switch_decides_the_objective(trained_arm: Callable[[str], TrainedArm]) -> None:
    margin_only, update_only = trained_arm("siammargin_margin_only"), trained_arm("siammargin_update_only")
    assert type(build_objective(margin_only.config, margin_only.training)) is RPNMarginObjective
    for row in margin_only.run.step_losses:  # pysot's loc weight 1.2, the margin's 1.0
        assert row["margin"] > 0
        assert row["total"] == pytest.approx(row["cls"] + 1.2 * row["loc"] + row["margin"], rel=1e-5)
    assert type(build_objective(update_only.config, update_only.training)) is RPNObjective
    for row in update_only.run.step_losses:
        assert "margin" not in row
        assert row["total"] == pytest.approx(row["cls"] + 1.2 * row["loc"], rel=1e-5)


def test_siammargin_update_switch_decides_the_tracking(trained_arm: Callable[[str], TrainedArm]) -> None:
    sequence = generate_sequence(SequenceSpec(width=320, height=240, length=4, seed=6))
    updates = {}
    for name in ("siammargin_margin_only", "siammargin_update_only"):
        arm = trained_arm(name)
        assert arm.package.meta.template_update == arm.config.template_update.enabled
        # Gate 0: every frame would be confident enough to update, when the update is on.
        config = arm.config.model_copy(
            update={
                "template_update": TemplateUpdateConfig(enabled=arm.config.template_update.enabled, gate=0.0)
            }
        )
        tracker = OfflineTracker(config, PackageRunner(arm.package))
        tracker.init(sequence.frame(0), cast("Sequence[float]", sequence.init_box))
        assert tracker._embedding is not None
        initial = tracker._embedding.copy()
        for index in range(1, 4):
            tracker.track(sequence.frame(index))
        assert tracker.state is not None and tracker._embedding is not None
        updates[name] = (tracker.state.template_updates, np.array_equal(tracker._embedding, initial))
    assert updates == {"siammargin_margin_only": (0, True), "siammargin_update_only": (3, False)}
