"""Training objectives: label assignment plus losses for one head kind, found by name in a registry.

An objective is built by a factory registered with `@register_objective(head_kind, name=...)`; the
factory takes the tracker and training configs. The trainer uses three methods:
- `labels(box, score_size, positive_pair, rng) -> dict[str, np.ndarray]`: the targets of one search crop
  (`box` xyxy in crop px relative to the crop centre), run in the data-loader workers;
- `outputs(network, template, search, box_prior) -> dict[str, Tensor]`: the network's head outputs by
  name (`SiameseNetwork.search_output_names`), plus whatever the losses need besides;
- `losses(outputs, labels) -> dict[str, Tensor]`: the named, weighted loss terms and their sum `total`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from siamstream.config import RPNHyper, TrackerConfig
from siamstream.nn.depthwise import DepthwiseXCorr
from siamstream.nn.network import SiameseNetwork
from siamstream.tracking.anchors import ban_points
from siamstream.training.config import (
    BackboneTraining,
    LossWeights,
    LRSchedule,
    PairSettings,
    TrainingConfig,
    pysot_backbone_training,
    pysot_search_size,
    register_recipe,
)
from siamstream.training.labels import (
    SampleCaps,
    anchor_grid,
    anchor_labels,
    circle_ellipse_labels,
    circle_labels,
    disk_labels,
    ellipse_labels,
    inside_box_labels,
    margin_cell_labels,
)
from siamstream.training.losses import (
    BOX_LOSSES,
    balanced_bce,
    cosine_correlation,
    ltrb_to_xyxy,
    margin_loss,
    select_cross_entropy,
    weighted_smooth_l1,
)

Labels = dict[str, np.ndarray]


class Objective(Protocol):
    head_kind: str

    def labels(
        self, box: np.ndarray, score_size: int, positive_pair: bool, rng: np.random.Generator
    ) -> Labels: ...

    def outputs(
        self, network: SiameseNetwork, template: Tensor, search: Tensor, box_prior: Tensor
    ) -> dict[str, Tensor]: ...

    def losses(self, outputs: dict[str, Tensor], labels: dict[str, Tensor]) -> dict[str, Tensor]: ...


ObjectiveFactory = Callable[[TrackerConfig, TrainingConfig], Objective]
_OBJECTIVES: dict[str, tuple[str, ObjectiveFactory]] = {}


def register_objective(
    head_kind: str, name: str | None = None
) -> Callable[[ObjectiveFactory], ObjectiveFactory]:
    """Register an objective factory for networks whose head is `head_kind`, under `name` (default: the
    head kind itself, which makes it that head's default objective)."""

    def decorate(factory: ObjectiveFactory) -> ObjectiveFactory:
        key = name or head_kind
        if key in _OBJECTIVES:
            raise ValueError(f"objective {key!r} is registered twice")
        _OBJECTIVES[key] = (head_kind, factory)
        return factory

    return decorate


def list_objectives() -> dict[str, str]:
    """Registered objective names and the head kind each trains."""
    return {name: head for name, (head, _) in sorted(_OBJECTIVES.items())}


def build_objective(tracker: TrackerConfig, training: TrainingConfig) -> Objective:
    """The objective named in `training.objective` (default: the tracker's head kind) for this tracker."""
    name = training.objective or tracker.head.kind
    if name not in _OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; known: {', '.join(sorted(_OBJECTIVES))}")
    head_kind, factory = _OBJECTIVES[name]
    if head_kind != tracker.head.kind:
        raise ValueError(
            f"objective {name!r} trains {head_kind} heads, {tracker.name} has a {tracker.head.kind} head"
        )
    return factory(tracker, training)


def named_outputs(
    network: SiameseNetwork, template: Tensor, search: Tensor, box_prior: Tensor
) -> dict[str, Tensor]:
    """The head outputs of `network` for template/search crops [B,3,*,*] (0..255 BGR), by output name."""
    embedding = network.template_embedding(template, box_prior)
    return dict(zip(network.search_output_names, network.search_outputs(embedding, search), strict=True))


def _caps(training: TrainingConfig) -> SampleCaps:
    settings = training.labels
    return SampleCaps(
        positives=settings.positives,
        negatives=settings.total - settings.positives,
        negatives_in_negative_pair=settings.negatives_in_negative_pair,
    )


def _weighted(terms: dict[str, tuple[float, Tensor]]) -> dict[str, Tensor]:
    losses = {name: value for name, (_, value) in terms.items()}
    losses["total"] = sum((weight * value for weight, value in terms.values()), start=torch.zeros(()))
    return losses


class RPNObjective:
    """SiamRPN++: anchor IoU labels, `select_cross_entropy` on cls, weighted smooth-L1 on the deltas."""

    head_kind = "rpn"

    def __init__(self, tracker: TrackerConfig, training: TrainingConfig) -> None:
        anchors = tracker.hyper.anchors if isinstance(tracker.hyper, RPNHyper) else None
        if anchors is None:
            raise ValueError(f"{tracker.name}: an anchor-based objective needs the RPN hyper with anchors")
        self.anchor_config = anchors
        self.settings = training.labels
        self.caps = _caps(training)
        self.weights = training.loss

    def labels(
        self, box: np.ndarray, score_size: int, positive_pair: bool, rng: np.random.Generator
    ) -> Labels:
        anchors = anchor_grid(
            self.anchor_config.stride, self.anchor_config.ratios, self.anchor_config.scales, score_size
        )
        result = anchor_labels(
            box,
            anchors,
            score_size,
            positive_pair,
            rng,
            self.settings.positive_iou,
            self.settings.negative_iou,
            self.caps,
        )
        return {"cls": result.cls, "delta": result.delta, "delta_weight": result.delta_weight}

    def outputs(
        self, network: SiameseNetwork, template: Tensor, search: Tensor, box_prior: Tensor
    ) -> dict[str, Tensor]:
        return named_outputs(network, template, search, box_prior)

    def rpn_terms(
        self, outputs: dict[str, Tensor], labels: dict[str, Tensor]
    ) -> dict[str, tuple[float, Tensor]]:
        cls, loc = outputs["cls"], outputs["loc"]
        batch, _, size, _ = cls.shape
        anchors = labels["cls"].size(1)
        # [B, 2A, S, S] laid out [bg x A, fg x A] -> [B*A*S*S, 2]
        logits = cls.reshape(batch, 2, anchors, size, size).permute(0, 2, 3, 4, 1).reshape(-1, 2)
        cls_loss = select_cross_entropy(logits, labels["cls"].reshape(-1))
        deltas = loc.reshape(batch, 4, anchors, size, size)
        loc_loss = weighted_smooth_l1(
            deltas, labels["delta"], labels["delta_weight"], self.weights.smooth_l1_beta
        )
        return {"cls": (self.weights.cls, cls_loss), "loc": (self.weights.loc, loc_loss)}

    def losses(self, outputs: dict[str, Tensor], labels: dict[str, Tensor]) -> dict[str, Tensor]:
        return _weighted(self.rpn_terms(outputs, labels))


class RPNMarginObjective(RPNObjective):
    """SiamMargin: the RPN objective plus `margin_loss` on the cosine similarity of every cls-branch
    correlation (template kernel against each search window), averaged over levels.

    The cosine is taken on the batch-normalised `conv_kernel` / `conv_search` features before their ReLU,
    where a background window can point away from the template (cosine down to -1); after the ReLU no
    cosine is below 0 and the negatives' margin can never be met (see `margin_loss`). Pulling a
    background window's pre-activation against the template's leaves the two ReLU'd maps the correlation
    uses active on different channels, so their product, the RPN's correlation, falls to 0.
    Cell labels are `labels.margin_cell_labels`, from the same anchors as the RPN labels.
    """

    def labels(
        self, box: np.ndarray, score_size: int, positive_pair: bool, rng: np.random.Generator
    ) -> Labels:
        result = super().labels(box, score_size, positive_pair, rng)
        anchors = anchor_grid(
            self.anchor_config.stride, self.anchor_config.ratios, self.anchor_config.scales, score_size
        )
        result["margin"] = margin_cell_labels(
            box, anchors, score_size, positive_pair, self.settings.positive_iou
        )
        return result

    def outputs(
        self, network: SiameseNetwork, template: Tensor, search: Tensor, box_prior: Tensor
    ) -> dict[str, Tensor]:
        with _captured_cls_pre_activations(network) as captured:
            outputs = named_outputs(network, template, search, box_prior)
        cosines = [
            cosine_correlation(search_map, kernel)
            for kernels, search_maps in captured
            for kernel, search_map in zip(kernels, search_maps, strict=True)
        ]
        if not cosines:
            raise ValueError("the margin objective needs depth-wise cls branches (pysot RPN heads)")
        outputs["cosine"] = torch.stack(cosines).mean(0)
        return outputs

    def losses(self, outputs: dict[str, Tensor], labels: dict[str, Tensor]) -> dict[str, Tensor]:
        terms = self.rpn_terms(outputs, labels)
        loss = margin_loss(
            outputs["cosine"].float(), labels["margin"], self.weights.margin_value, self.weights.margin_scale
        )
        terms["margin"] = (self.weights.margin, loss)
        return _weighted(terms)


def _batch_norm(block: nn.Sequential) -> nn.BatchNorm2d:
    return next(module for module in block if isinstance(module, nn.BatchNorm2d))


@contextmanager
def _captured_cls_pre_activations(
    network: SiameseNetwork,
) -> Iterator[list[tuple[list[Tensor], list[Tensor]]]]:
    """For every cls-branch `DepthwiseXCorr`, the (kernels, search maps) run inside the block, taken at
    the batch norms of `conv_kernel` and `conv_search`, before their ReLU. The ReLU works in place, so
    each output is cloned as it leaves the batch norm."""
    captured: list[tuple[list[Tensor], list[Tensor]]] = []
    handles = []
    for name, module in network.named_modules():
        if isinstance(module, DepthwiseXCorr) and name.rsplit(".", 1)[-1] == "cls":
            kernels: list[Tensor] = []
            search_maps: list[Tensor] = []
            captured.append((kernels, search_maps))
            for block, store in ((module.conv_kernel, kernels), (module.conv_search, search_maps)):
                handles.append(
                    _batch_norm(block).register_forward_hook(
                        lambda _m, _args, out, store=store: store.append(out.clone())
                    )
                )
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


# The label assignment of each `LabelSettings.point_shape`.
POINT_LABELS = {
    "ellipse": ellipse_labels,
    "ellipse_centerness": ellipse_labels,
    "circle_ellipse": circle_ellipse_labels,
    "circle": circle_labels,
}


class PointObjective:
    """Anchor-free heads (BAN, CAR): cross-entropy on labelled cells, a box loss on the positives
    (weighted by their centerness target with the "ellipse_centerness" labels)."""

    head_kind = "ban"

    def __init__(self, tracker: TrackerConfig, training: TrainingConfig):
        self.stride = tracker.crop.stride
        self.settings = training.labels
        self.caps = _caps(training)
        self.weights = training.loss
        self.box_loss = BOX_LOSSES[training.loss.box_loss]

    def labels(
        self, box: np.ndarray, score_size: int, positive_pair: bool, rng: np.random.Generator
    ) -> Labels:
        assign = POINT_LABELS[self.settings.point_shape]
        result = assign(box, self.stride, score_size, positive_pair, rng, self.caps)
        return {"cls": result.cls, "ltrb": result.ltrb, "centerness": result.centerness}

    def outputs(
        self, network: SiameseNetwork, template: Tensor, search: Tensor, box_prior: Tensor
    ) -> dict[str, Tensor]:
        return named_outputs(network, template, search, box_prior)

    def point_terms(
        self, outputs: dict[str, Tensor], labels: dict[str, Tensor], box_weight: Tensor | None
    ) -> dict[str, tuple[float, Tensor]]:
        cls, loc = outputs["cls"], outputs["loc"]
        size = cls.size(-1)
        cls_loss = select_cross_entropy(cls.permute(0, 2, 3, 1).reshape(-1, 2), labels["cls"].reshape(-1))
        positive = labels["cls"].reshape(-1) == 1
        points = torch.tensor(ban_points(self.stride, size), device=loc.device).repeat(cls.size(0), 1)
        predicted = loc.permute(0, 2, 3, 1).reshape(-1, 4)
        target = labels["ltrb"].permute(0, 2, 3, 1).reshape(-1, 4)
        weight = None if box_weight is None else box_weight.reshape(-1)[positive]
        loc_loss = self.box_loss(
            ltrb_to_xyxy(points[positive], predicted[positive]),
            ltrb_to_xyxy(points[positive], target[positive]),
            weight,
        )
        return {"cls": (self.weights.cls, cls_loss), "loc": (self.weights.loc, loc_loss)}

    def losses(self, outputs: dict[str, Tensor], labels: dict[str, Tensor]) -> dict[str, Tensor]:
        weight = labels["centerness"] if self.settings.point_shape == "ellipse_centerness" else None
        return _weighted(self.point_terms(outputs, labels, weight))


class CARObjective(PointObjective):
    """SiamCAR: dense inside-box labels, box loss weighted by the centerness target, BCE on centerness.

    With `loss.cen = 0` the centerness branch is not trained and the box loss is unweighted (DCFNet)."""

    head_kind = "car"

    def labels(
        self, box: np.ndarray, score_size: int, positive_pair: bool, rng: np.random.Generator
    ) -> Labels:
        result = inside_box_labels(
            box, self.stride, score_size, positive_pair, self.settings.car_central_fraction
        )
        return {"cls": result.cls, "ltrb": result.ltrb, "centerness": result.centerness}

    def losses(self, outputs: dict[str, Tensor], labels: dict[str, Tensor]) -> dict[str, Tensor]:
        use_centerness = self.weights.cen > 0
        terms = self.point_terms(outputs, labels, labels["centerness"] if use_centerness else None)
        if use_centerness:
            positive = labels["cls"] == 1
            logits = outputs["cen"][:, 0][positive].float()
            cen_loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(logits, labels["centerness"][positive])
                if logits.numel()
                else logits.new_zeros(())
            )
            terms["cen"] = (self.weights.cen, cen_loss)
        return _weighted(terms)


class SiamFCObjective:
    """SiamFC: disk labels and the balanced logistic loss on the response map."""

    head_kind = "siamfc"

    def __init__(self, tracker: TrackerConfig, training: TrainingConfig):
        self.stride = tracker.crop.stride
        self.radius = training.labels.siamfc_radius
        self.weights = training.loss

    def labels(
        self, box: np.ndarray, score_size: int, positive_pair: bool, rng: np.random.Generator
    ) -> Labels:
        result = disk_labels(box, self.stride, score_size, positive_pair, self.radius)
        return {"target": result.target, "weight": result.weight}

    def outputs(
        self, network: SiameseNetwork, template: Tensor, search: Tensor, box_prior: Tensor
    ) -> dict[str, Tensor]:
        return named_outputs(network, template, search, box_prior)

    def losses(self, outputs: dict[str, Tensor], labels: dict[str, Tensor]) -> dict[str, Tensor]:
        loss = balanced_bce(outputs["response"][:, 0], labels["target"], labels["weight"])
        return _weighted({"cls": (self.weights.cls, loss)})


register_objective("rpn")(RPNObjective)
register_objective("rpn", name="rpn_margin")(RPNMarginObjective)
register_objective("ban")(PointObjective)
register_objective("car")(CARObjective)
register_objective("siamfc")(SiamFCObjective)


@register_recipe("rpn")
def rpn_recipe(tracker: TrackerConfig) -> TrainingConfig:
    """The RPN heads (SiamRPN++, SiamMargin): pysot's recipe, TRAIN.LOC_WEIGHT 1.2; SiamMargin's margin
    supervision trains with the margin objective."""
    return TrainingConfig(
        loss=LossWeights(loc=1.2),
        backbone=pysot_backbone_training(tracker),
        search_size=pysot_search_size(tracker),
        objective="rpn_margin" if tracker.head.margin_supervision else None,
    )


@register_recipe("ban")
def ban_recipe(tracker: TrackerConfig) -> TrainingConfig:
    """hqucv/siamban experiments/siamban_r50_l234/config.yaml; siamban_acm_r50 trains with its code."""
    return TrainingConfig(
        batch_size=28,  # TRAIN.BATCH_SIZE
        pairs_per_epoch=1_000_000,  # DATASET.VIDEOS_PER_EPOCH
        lr=LRSchedule(end_lr=0.00005),  # TRAIN.LR.KWARGS.end_lr
        # siamban/models/loss.py `select_iou_loss`: `linear_iou`; TRAIN.LOC_WEIGHT 1.0
        loss=LossWeights(loc=1.0, box_loss="linear_iou"),
        backbone=pysot_backbone_training(tracker),
        search_size=pysot_search_size(tracker),
    )


@register_recipe("car")
def car_recipe(tracker: TrackerConfig) -> TrainingConfig:
    """ohhhyeahhh/SiamCAR experiments/siamcar_r50/config.yaml (the other values are pysot's defaults)."""
    return TrainingConfig(
        batch_size=80,  # TRAIN.BATCH_SIZE ("80 # 32")
        # TRAIN.LOC_WEIGHT 3.0, CEN_WEIGHT 1.0; pysot/models/loss_car.py `IOULoss`: -log((I+1)/(U+1))
        loss=LossWeights(cls=1.0, loc=3.0, cen=1.0, box_loss="log_iou"),
        pairs=PairSettings(negative_probability=0.0),  # DATASET.NEG 0.0: no negative pairs
        backbone=pysot_backbone_training(tracker),
        search_size=pysot_search_size(tracker),
    )


@register_recipe("siamfc")
def siamfc_recipe(tracker: TrackerConfig) -> TrainingConfig:
    """siamfc-pytorch: everything trained from the start, 50 epochs, lr 1e-2 -> 1e-5, no warm-up."""
    return TrainingConfig(
        epochs=50,
        weight_decay=5e-4,
        lr=LRSchedule(warmup_epochs=0, base_lr=0.01, end_lr=1e-5),
        backbone=BackboneTraining(unfreeze_epoch=0, lr_multiplier=1.0),
    )
