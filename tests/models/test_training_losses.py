"""Each loss against values computed by hand on tiny tensors."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import pytest
import torch

from siamstream.nn.depthwise import DepthwiseXCorr
from siamstream.training.losses import (
    balanced_bce,
    cosine_correlation,
    diou_loss,
    giou_loss,
    linear_iou_loss,
    log_iou_loss,
    ltrb_to_xyxy,
    margin_loss,
    select_cross_entropy,
    weighted_smooth_l1,
)
from siamstream.training.objectives import RPNMarginObjective

if TYPE_CHECKING:
    from siamstream.nn.network import SiameseNetwork


def test_select_cross_entropy_averages_positive_and_negative_halves() -> None:
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3)], [5.0, -5.0]])
    labels = torch.tensor([1, 0, -1])
    # positive: -log(1/2); negative: -log(1/4); the ignored row does not count
    assert float(select_cross_entropy(logits, labels)) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(4))
    only_negatives = torch.tensor([0, 0, -1])
    expected = 0.5 * (math.log(2) + math.log(4)) / 2
    assert float(select_cross_entropy(logits, only_negatives)) == pytest.approx(expected)


def test_balanced_bce_is_weighted_sum_per_sample() -> None:
    logits = torch.zeros(2, 2, 2)
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]] * 2)
    weight = torch.tensor([[[0.5, 1 / 6], [1 / 6, 1 / 6]]] * 2)
    assert float(balanced_bce(logits, target, weight)) == pytest.approx(math.log(2))
    logits[:, 0, 0] = 2.0  # positive cell: log(1 + e^-2)
    expected = 0.5 * math.log(1 + math.exp(-2)) + 0.5 * math.log(2)
    assert float(balanced_bce(logits, target, weight)) == pytest.approx(expected, rel=1e-6)


def test_weighted_smooth_l1_with_l1_and_quadratic_parts() -> None:
    prediction = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    target = torch.zeros(1, 4, 1)
    weight = torch.tensor([[0.5]])
    assert float(weighted_smooth_l1(prediction, target, weight)) == pytest.approx(5.0)
    # beta 2: 1 -> 0.5*1/2 = 0.25; 2 -> 2 - 1 = 1; 3 -> 2; 4 -> 3; sum 6.25, x 0.5
    assert float(weighted_smooth_l1(prediction, target, weight, beta=2.0)) == pytest.approx(3.125)


PREDICTED = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
TARGET = torch.tensor([[1.0, 1.0, 3.0, 3.0]])


def test_iou_giou_diou_losses() -> None:
    # intersection 1, union 7, enclosing box 3x3 (area 9, diagonal^2 18), centre gap^2 2; the IoU losses
    # of SiamBAN and SiamCAR smooth the IoU to (1 + 1) / (7 + 1)
    assert float(linear_iou_loss(PREDICTED, TARGET)) == pytest.approx(1 - 2 / 8, rel=1e-6)
    assert float(log_iou_loss(PREDICTED, TARGET)) == pytest.approx(math.log(4), rel=1e-6)
    assert float(giou_loss(PREDICTED, TARGET)) == pytest.approx(6 / 7 + 2 / 9, rel=1e-6)
    assert float(diou_loss(PREDICTED, TARGET)) == pytest.approx(6 / 7 + 2 / 18, rel=1e-6)
    assert float(diou_loss(TARGET, TARGET)) == pytest.approx(0.0, abs=1e-6)
    assert float(log_iou_loss(TARGET, TARGET)) == pytest.approx(0.0, abs=1e-6)


def test_box_losses_separate_disjoint_boxes_and_weight() -> None:
    far = torch.tensor([[10.0, 0.0, 12.0, 2.0]])
    # intersection 0, union 8: smoothed IoU 1/9
    assert float(linear_iou_loss(PREDICTED, far)) == pytest.approx(8 / 9, rel=1e-6)
    assert float(log_iou_loss(PREDICTED, far)) == pytest.approx(math.log(9), rel=1e-6)
    # GIoU: enclosing 12x2 = 24, union 8 -> 1 + 16/24; DIoU: gap^2 100, diagonal^2 144+4
    assert float(giou_loss(PREDICTED, far)) == pytest.approx(1 + 16 / 24, rel=1e-6)
    assert float(diou_loss(PREDICTED, far)) == pytest.approx(1 + 100 / 148, rel=1e-6)
    pair = torch.cat([PREDICTED, PREDICTED]), torch.cat([TARGET, PREDICTED])
    weighted = linear_iou_loss(*pair, weight=torch.tensor([3.0, 1.0]))
    assert float(weighted) == pytest.approx(3 * 0.75 / 4, rel=1e-6)


def test_log_iou_loss_is_siamcars_iou_loss_on_distances() -> None:
    # SiamCAR's IOULoss on (l, t, r, b) from one point, by hand. Target (20, 10, 20, 10): 40 x 20 = 800.
    # Prediction (10, 10, 20, 10): 30 x 20 = 600, all inside: I 600, U 800.
    # Prediction (20, 5, 20, 5): 40 x 10 = 400, all inside: I 400, U 800.
    point = torch.zeros(2, 2)
    predicted = torch.tensor([[10.0, 10.0, 20.0, 10.0], [20.0, 5.0, 20.0, 5.0]])
    target = torch.tensor([[20.0, 10.0, 20.0, 10.0]] * 2)
    boxes = ltrb_to_xyxy(point, predicted), ltrb_to_xyxy(point, target)
    first, second = -math.log(601 / 801), -math.log(401 / 801)
    assert float(log_iou_loss(*boxes)) == pytest.approx((first + second) / 2, rel=1e-6)
    # weighted by the centerness targets as SiamCAR does: sum(w * loss) / sum(w)
    weighted = log_iou_loss(*boxes, weight=torch.tensor([3.0, 1.0]))
    assert float(weighted) == pytest.approx((3 * first + second) / 4, rel=1e-6)


def test_ltrb_to_xyxy() -> None:
    boxes = ltrb_to_xyxy(torch.tensor([[8.0, -8.0]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert boxes.tolist() == [[7.0, -10.0, 11.0, -4.0]]


def test_cosine_correlation_of_windows() -> None:
    search = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).reshape(1, 1, 2, 3)
    kernel = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 1, 2, 2)
    cosine = cosine_correlation(search, kernel)
    assert cosine.shape == (1, 1, 1, 2)
    torch.testing.assert_close(cosine.flatten(), torch.tensor([1.0, 0.0]), atol=1e-5, rtol=0)


def test_margin_loss_shifts_positives_down_and_negatives_up() -> None:
    cosine = torch.tensor([0.5, 0.0, 0.9]).reshape(1, 1, 1, 3)
    labels = torch.tensor([1.0, 0.0, -1.0]).reshape(1, 1, 3)
    # positive logit 4*(0.5-0.25) = 1 -> log(1+e^-1); negative logit 4*(0+0.25) = 1 -> log(1+e)
    expected = 0.5 * math.log(1 + math.exp(-1)) + 0.5 * math.log(1 + math.e)
    assert float(margin_loss(cosine, labels, margin=0.25, scale=4.0)) == pytest.approx(expected, rel=1e-6)
    # without the margin the same map would cost less: the margin is what makes the supervision harsh
    assert float(margin_loss(cosine, labels, margin=0.0, scale=4.0)) < expected


@pytest.mark.parametrize(
    ("tracker", "update", "terms"),
    [
        ("siamban_r50", {}, {"cls", "loc"}),
        (
            "siamban_r50",
            {"labels": {"point_shape": "circle_ellipse"}, "loss": {"box_loss": "diou"}},
            {"cls", "loc"},
        ),
        ("siamcar_r50", {}, {"cls", "loc", "cen"}),
        ("siamcar_r50", {"loss": {"cen": 0.0}}, {"cls", "loc"}),
    ],
)
def test_anchor_free_objectives_sum_their_weighted_terms(tracker: str, update: dict, terms: set[str]) -> None:
    import numpy as np

    from siamstream.registry import get_config
    from siamstream.training import TrainingConfig, build_objective, default_training_config

    config = get_config(tracker)
    training = TrainingConfig.model_validate({**default_training_config(config).model_dump(), **update})
    objective = build_objective(config, training)
    box = np.array([-30.0, -20.0, 34.0, 22.0])
    labels = [objective.labels(box, 25, True, np.random.default_rng(seed)) for seed in range(2)]
    batch = {name: torch.stack([torch.from_numpy(row[name]) for row in labels]) for name in labels[0]}
    generator = torch.Generator().manual_seed(0)
    outputs = {
        "cls": torch.randn(2, 2, 25, 25, generator=generator),
        "loc": torch.rand(2, 4, 25, 25, generator=generator) * 40 + 1,
        "cen": torch.randn(2, 1, 25, 25, generator=generator),
    }
    losses = objective.losses(outputs, batch)
    assert set(losses) == terms | {"total"}
    weights = training.loss
    expected = sum(getattr(weights, name) * float(losses[name]) for name in terms)
    assert float(losses["total"]) == pytest.approx(expected, rel=1e-6)
    assert all(float(losses[name]) > 0 for name in terms)


class ToyCorrelation(torch.nn.Module):
    """The smallest network the margin objective trains: one pysot cls branch on given feature maps."""

    search_output_names = ("cls",)

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.cls = DepthwiseXCorr(channels, channels, 2)

    def template_embedding(self, template: torch.Tensor, box_prior: torch.Tensor) -> torch.Tensor:
        return self.cls.template_kernel(template)

    def search_outputs(self, kernel: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.cls(kernel, search),)


def as_network(toy: ToyCorrelation) -> SiameseNetwork:
    # The toy has the parts of a SiameseNetwork the objective calls, duck-typed, not the whole class.
    return cast("SiameseNetwork", toy)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def margin_objective() -> RPNMarginObjective:
    from siamstream.registry import get_config
    from siamstream.training import TrainingConfig

    return RPNMarginObjective(get_config("siammargin_r50"), TrainingConfig(objective="rpn_margin"))


def test_margin_cosine_is_taken_before_the_relu_by_hand() -> None:
    network = ToyCorrelation(2).eval()  # fresh batch norms: identity up to their eps
    with torch.no_grad():
        for block in (network.cls.conv_kernel, network.cls.conv_search):
            conv = block[0]
            assert isinstance(conv, torch.nn.Conv2d)
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = conv.weight[1, 1, 1, 1] = 1.0  # 3x3 conv = centre tap
    template = torch.zeros(1, 2, 3, 3)
    template[0, :, 1, 1] = torch.tensor([1.0, 2.0])  # kernel (1, 2), 1x1
    search = torch.zeros(1, 2, 3, 5)
    search[0, :, 1, 1:4] = torch.tensor([[1.0, -1.0, 2.0], [2.0, -2.0, -1.0]])  # (1,2), (-1,-2), (2,-1)
    outputs = margin_objective().outputs(as_network(network), template, search, torch.zeros(1, 2))
    # Before the ReLU: cos((1,2), (1,2)) = 1, cos((1,2), (-1,-2)) = -1, cos((1,2), (2,-1)) = 0.
    # (After it the last two would be 0 and 2/sqrt(20): no window could be below 0.)
    torch.testing.assert_close(outputs["cosine"].flatten(), torch.tensor([1.0, -1.0, 0.0]), atol=1e-5, rtol=0)
    labels = torch.tensor([[[1.0, 0.0, 0.0]]])
    # positive logit 16 (1 - 0.25) = 12; negative logits 16 (-1 + 0.25) = -12 and 16 (0 + 0.25) = 4
    expected = 0.5 * softplus(-12) + 0.5 * (softplus(-12) + softplus(4)) / 2
    loss = margin_loss(outputs["cosine"], labels, margin=0.25, scale=16.0)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_margin_loss_falls_towards_zero_on_separable_features() -> None:
    # Background b everywhere, one 3x3 block of the template's a: the window on it is the target, its
    # 8 neighbours (half on it) are ignored, every other window is background. A post-ReLU cosine could
    # not go below 0 there, leaving the loss above 0.5 log(1 + e^4) = 2.0 for good.
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, generator=generator), torch.randn(4, generator=generator)
    template = a[None, :, None, None].expand(1, 4, 3, 3)
    search = b[None, :, None, None].repeat(1, 1, 9, 9)
    search[0, :, 2:5, 2:5] = a[:, None, None]
    labels = torch.zeros(1, 7, 7)
    labels[0, 1:4, 1:4] = -1.0
    labels[0, 2, 2] = 1.0
    network = ToyCorrelation(4).eval()
    objective = margin_objective()
    optimiser = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    for _ in range(200):
        cosine = objective.outputs(as_network(network), template, search, torch.zeros(1, 2))["cosine"]
        loss = margin_loss(cosine, labels, margin=0.25, scale=16.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.02
    cosine = cosine.detach()
    assert float(cosine[0, 0, 2, 2]) > 0.25 and float(cosine[labels[None] == 0].max()) < -0.25


def test_margin_objective_labels_a_target_no_anchor_fits_on_its_centre_cell() -> None:
    import numpy as np

    box = np.array([-100.0, -8.0, 100.0, 8.0])  # 200x16: best anchor IoU 0.34, no RPN positive
    labels = margin_objective().labels(box, 25, True, np.random.default_rng(0))
    assert not (labels["cls"] == 1).any()
    margin = labels["margin"]
    assert margin.shape == (25, 25) and margin.sum() == 1 and margin[12, 12] == 1
