"""SiamCAN: the two attentions against hand-computed values, the template stage's precomputed pieces,
the learned level fusion, anchor-free post-processing, the checkpoint -> package -> tracker path, and the
training recipe."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from siamstream.nn.attention import ChannelAttention, SpatialAttention, apply_channel_weights
from siamstream.nn.siamcan import CANLevel, SiamCANNetwork
from siamstream.registry import get_config
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.training import build_objective
from siamstream.training.losses import BOX_LOSSES
from siamstream.training.objectives_dcf_can import CANObjective, siamcan_training_config
from tests.models.package_round_trip import track_through_package, trained_like_network

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

# Search maps of 21 >= 20, so that the neck does not crop them as template maps; score map 15.
SEARCH_SIDE = 175
CHANNELS = 256
KERNEL_VALUES = CHANNELS * 5 * 5
LEVEL_VALUES = 2 * KERNEL_VALUES + CHANNELS  # [cls kernel, loc kernel, channel weights] per level


def sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))


def test_channel_attention_by_hand() -> None:
    attention = ChannelAttention(3)
    with torch.no_grad():
        attention.conv.weight.copy_(torch.tensor([[[0.5, 1.0, -1.0]]]))
    # Channel means 1, 2, 3, 4 (each 2x2 map holds mean +- 1).
    template = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1) + torch.tensor(
        [[1.0, -1.0], [-1.0, 1.0]]
    )
    weights = attention(template)
    # V_i = sigmoid(0.5 y_(i-1) + y_i - y_(i+1)), zero beyond the ends.
    expected = [sigmoid(1 - 2), sigmoid(0.5 + 2 - 3), sigmoid(1 + 3 - 4), sigmoid(1.5 + 4)]
    torch.testing.assert_close(weights, torch.tensor([expected]))
    search = torch.full((1, 4, 3, 3), 2.0)
    attended = apply_channel_weights(search, weights)
    torch.testing.assert_close(attended[0, :, 1, 2], 2 * torch.tensor(expected))


def test_channel_weights_multiply_each_row_with_its_own_template() -> None:
    weights = torch.tensor([[0.5, 1.0], [0.25, 0.0]])
    attended = apply_channel_weights(torch.ones(2, 2, 2, 2), weights)
    torch.testing.assert_close(attended[:, :, 0, 0], weights)


def test_spatial_attention_by_hand() -> None:
    attention = SpatialAttention(1)
    with torch.no_grad():
        attention.conv.weight.copy_(torch.tensor([1.0, -0.5]).reshape(1, 2, 1, 1))  # mean, max
    feature = torch.tensor([[[[1.0, 4.0]], [[3.0, 0.0]]]])  # mean [2, 2], max [3, 4]
    gate = torch.tensor([sigmoid(2 - 1.5), sigmoid(2 - 2)])
    torch.testing.assert_close(attention(feature), feature * gate)


def test_spatial_attention_pads_its_convolution_with_zeros() -> None:
    attention = SpatialAttention(3)
    with torch.no_grad():
        attention.conv.weight.zero_()
        attention.conv.weight[0, 0] = 1.0  # sum of the channel means over the 3x3 neighbourhood
    feature = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    gate = torch.tensor([sigmoid(1 + 2), sigmoid(1 + 2 + 3), sigmoid(2 + 3)])
    torch.testing.assert_close(attention(feature), feature * gate)


def test_attention_kernels_must_be_odd() -> None:
    with pytest.raises(ValueError, match="odd"):
        ChannelAttention(4)
    with pytest.raises(ValueError, match="odd"):
        SpatialAttention(6)


@pytest.fixture(scope="module")
def siamcan() -> SiamCANNetwork:
    network = trained_like_network(get_config("siamcan_r50"), seed=0)
    assert isinstance(network, SiamCANNetwork)
    assert network.head.level_weight is not None  # siamcan_r50 weights its levels
    with torch.no_grad():  # distinct level weights and loc scales that keep exp() well scaled
        network.head.level_weight.copy_(torch.tensor([0.2, 1.0, 1.8]))
        network.head.loc_scale.copy_(torch.tensor([0.01, 0.02, 0.03]))
    return network


def crops(seed: int, side: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, side, side), generator=generator).float()


def test_template_stage_precomputes_kernels_and_channel_weights(siamcan: SiamCANNetwork) -> None:
    crop_z = crops(1, 127)
    with torch.inference_mode():
        embedding = siamcan.template_embedding(crop_z, torch.tensor([[40.0, 50.0]]))
        template_maps = siamcan.features(crop_z)
        expected: list[torch.Tensor] = []
        for level, template_map in zip(siamcan.head.values(), template_maps, strict=True):
            assert isinstance(level, CANLevel) and level.channel_attention is not None
            assert template_map.shape == (1, CHANNELS, 7, 7)
            expected += [
                level.cls.conv_kernel(template_map),
                level.loc.conv_kernel(template_map),
                torch.sigmoid(level.channel_attention.conv(template_map.mean([2, 3])[:, None]))[:, 0],
            ]
    assert embedding.shape == (1, 3 * LEVEL_VALUES)
    torch.testing.assert_close(embedding, torch.cat([piece.flatten(1) for piece in expected], 1))


def test_search_fuses_the_attended_levels_by_softmax_weights(siamcan: SiamCANNetwork) -> None:
    crop_x = crops(2, SEARCH_SIDE)
    with torch.inference_mode():
        embedding = siamcan.template_embedding(crops(3, 127), torch.tensor([[40.0, 50.0]]))
        cls, loc = siamcan.search_outputs(embedding, crop_x)
        alpha = F.softmax(torch.tensor([0.2, 1.0, 1.8]), 0)
        expected_cls = torch.zeros_like(cls)
        expected_loc = torch.zeros_like(loc)
        search_maps = siamcan.features(crop_x)
        for index, (level, search_map) in enumerate(zip(siamcan.head.values(), search_maps, strict=True)):
            assert isinstance(level, CANLevel)
            start = index * LEVEL_VALUES
            cls_kernel = embedding[:, start : start + KERNEL_VALUES].reshape(1, CHANNELS, 5, 5)
            loc_kernel = embedding[:, start + KERNEL_VALUES : start + 2 * KERNEL_VALUES].reshape(
                1, CHANNELS, 5, 5
            )
            weights = embedding[:, start + 2 * KERNEL_VALUES : start + LEVEL_VALUES]
            attended = search_map * weights[:, :, None, None]
            expected_cls += alpha[index] * level.cls(cls_kernel, attended)
            expected_loc += alpha[index] * torch.exp(level.loc(loc_kernel, attended) * (0.01 * (index + 1)))
    assert cls.shape == (1, 2, 15, 15) and loc.shape == (1, 4, 15, 15)
    torch.testing.assert_close(cls, expected_cls, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loc, expected_loc, rtol=1e-5, atol=1e-5)


def test_channel_weights_from_the_template_change_the_search_output(siamcan: SiamCANNetwork) -> None:
    crop_x = crops(4, SEARCH_SIDE)
    with torch.inference_mode():
        embedding = siamcan.template_embedding(crops(5, 127), torch.tensor([[40.0, 50.0]]))
        search_maps = siamcan.features(crop_x)  # the search crop's maps do not depend on the template
        reference = siamcan.head_outputs(embedding, search_maps)
        assert torch.equal(siamcan.search_outputs(embedding, crop_x)[0], reference[0])
        for index in range(3):
            flattened = embedding.clone()
            weights = slice(index * LEVEL_VALUES + 2 * KERNEL_VALUES, (index + 1) * LEVEL_VALUES)
            flattened[:, weights] = 0.5  # a template that weights every channel alike
            cls, loc = siamcan.head_outputs(flattened, search_maps)
            assert not torch.allclose(cls, reference[0], rtol=1e-4, atol=1e-4), index
            assert not torch.allclose(loc, reference[1], rtol=1e-4, atol=1e-4), index


def test_post_processing_decodes_points_like_siamban() -> None:
    config = get_config("siamcan_r50")
    frame = np.full((240, 320, 3), 100, np.uint8)
    state, _ = init_track(config, frame, [130.0, 100.0, 60.0, 40.0])
    request = prepare_search(config, state, frame)
    score = config.crop.score_size
    cls = np.zeros((1, 2, score, score), np.float32)
    cls[0, 1, 12, 14] = 8.0  # the only confident point: 2 cells (16 crop px) right of the centre
    loc = np.full((1, 4, score, score), 32.0, np.float32)
    loc[0, :, 12, 14] = [30.0, 20.0, 30.0, 20.0]  # l, t, r, b: a 60x40 crop-px box centred on the point
    new_state, result = finish_search(config, state, request, (cls, loc))
    assert new_state.cx == pytest.approx(state.cx + 16 / request.scale_z)
    assert new_state.cy == pytest.approx(state.cy)
    assert result.score == pytest.approx(1 / (1 + math.exp(-8.0)), rel=1e-5)


def test_checkpoint_package_and_offline_tracker(tmp_path: Path) -> None:
    trip = track_through_package("siamcan_r50", tmp_path)
    assert trip.package.meta.search_outputs == ("cls", "loc")
    assert trip.package.meta.embedding_dim == 3 * LEVEL_VALUES
    assert trip.package.config == get_config("siamcan_r50")
    assert [r.frame_index for r in trip.packaged] == [0, 1, 2]
    for packaged, eager in zip(trip.packaged[1:], trip.eager[1:], strict=True):
        assert packaged.bbox == pytest.approx(eager.bbox, abs=1e-2)
        assert packaged.score == pytest.approx(eager.score, abs=1e-4)
        assert (
            packaged.score is not None
            and 0 <= packaged.score <= 1
            and all(math.isfinite(v) for v in packaged.bbox)
        )


def test_training_recipe_labels_circle_inside_ellipse_with_sample_caps() -> None:
    objective = build_objective(get_config("siamcan_r50"), siamcan_training_config())
    assert isinstance(objective, CANObjective) and objective.box_loss is BOX_LOSSES["diou"]
    box = np.array([-100.0, -90.0, 100.0, 90.0])  # xyxy crop px around the crop centre, 200x180
    labels = objective.labels(box, 25, True, np.random.default_rng(0))
    radius = 100 * 90 / math.hypot(100, 90)  # SiamCAN's circle C2: 66.9 px
    points = np.arange(-96, 97, 8, dtype=np.float64)
    x, y = np.meshgrid(points, points)
    positive, negative = labels["cls"] == 1, labels["cls"] == 0
    assert 0 < int(positive.sum()) <= 16 and 0 < int(negative.sum()) <= 48
    assert bool((np.hypot(x, y)[positive] < radius).all())
    assert bool((((x / 100) ** 2 + (y / 90) ** 2)[negative] > 1).all())


def test_training_recipe_regresses_with_diou() -> None:
    objective = build_objective(get_config("siamcan_r50"), siamcan_training_config())
    labels = objective.labels(np.array([-100.0, -90.0, 100.0, 90.0]), 25, True, np.random.default_rng(0))
    batch = {name: torch.from_numpy(value)[None] for name, value in labels.items()}
    cls = torch.zeros(1, 2, 25, 25)
    shifted = batch["ltrb"] + torch.tensor([5.0, 0.0, -5.0, 0.0])[None, :, None, None]  # 5 px to the left
    losses = objective.losses({"cls": cls, "loc": shifted}, batch)
    # Every positive: IoU 195/205, centre gap 5, enclosing box 205x180.
    expected_loc = 1 - 195 / 205 + 25 / (205**2 + 180**2)
    assert float(losses["loc"]) == pytest.approx(expected_loc, rel=1e-4)
    assert float(losses["cls"]) == pytest.approx(math.log(2), rel=1e-5)
    assert float(losses["total"]) == pytest.approx(expected_loc + math.log(2), rel=1e-4)


def test_default_training_config_is_the_papers_recipe() -> None:
    from siamstream.training.config import default_training_config

    can = default_training_config(get_config("siamcan_r50"))
    assert (can.loss.box_loss, can.labels.point_shape, can.labels.positives) == ("diou", "circle_ellipse", 16)
    dcf = default_training_config(get_config("dcfnet_r50"))
    assert dcf.loss.cen == 0.0 and dcf.objective == "dcf"
