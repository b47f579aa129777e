"""Typed training configuration: schedule, optimiser, backbone freezing, losses, labels, pair sampling.

Defaults are pysot's training recipe (SiamRPN++ configs: 20 epochs, SGD momentum 0.9, weight
decay 1e-4, 5 warm-up epochs 0.001 -> 0.005, log decay 0.005 -> 0.0005, backbone frozen for 10 epochs
then trained at 0.1 x the lr, 16 positives and 48 negatives per search crop, 20% negative pairs). Every
model rejects unknown keys, so the copy stored in a checkpoint is exactly what was trained with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from siamstream.config import TrackerConfig, merge_fields


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LRSchedule(Strict):
    """Learning rate per epoch: geometric warm-up, then log (geometric), step or milestone decay."""

    warmup_epochs: int = Field(
        default=5, ge=0, description="Epochs of warm-up from warmup_start_lr to base_lr."
    )
    warmup_start_lr: float = Field(default=0.001, gt=0, description="Learning rate of the first epoch.")
    base_lr: float = Field(default=0.005, gt=0, description="Learning rate at the end of warm-up.")
    decay: Literal["log", "step", "milestones"] = Field(default="log", description="Decay after warm-up.")
    end_lr: float = Field(default=0.0005, gt=0, description="Last epoch's learning rate (log decay).")
    step_epochs: int = Field(default=5, ge=1, description="Epochs between steps (step decay).")
    gamma: float = Field(default=0.1, gt=0, description="Factor applied at each step or milestone.")
    milestones: tuple[int, ...] = Field(
        default=(),
        description="Milestone decay: epochs after warm-up at which the lr is multiplied by gamma, in "
        "increasing order (DCFNet's 150/100/50-epoch fine-tuning is (150, 250)).",
    )

    @model_validator(mode="after")
    def _milestones_increase(self) -> LRSchedule:
        if self.decay == "milestones":
            if not self.milestones or any(m <= 0 for m in self.milestones):
                raise ValueError("milestone decay needs positive milestones")
            if list(self.milestones) != sorted(set(self.milestones)):
                raise ValueError("milestones must strictly increase")
        return self


class BackboneTraining(Strict):
    """When the (pre-trained) backbone starts learning, and which part of it."""

    unfreeze_epoch: int = Field(
        default=10, ge=0, description="First epoch (0-based) in which the backbone is trained; 0 = always."
    )
    layers: tuple[str, ...] = Field(
        default=(),
        description="Backbone parameter-name prefixes trained after unfreezing (e.g. 'layer2', "
        "'features.8'); empty means the whole backbone. Frozen layers also keep their BatchNorm statistics.",
    )
    lr_multiplier: float = Field(default=0.1, ge=0, description="Backbone lr as a fraction of the head lr.")


class LossWeights(Strict):
    """Weights and shapes of the loss terms (pysot: cls 1.0, loc 1.2 for RPN; SiamBAN 1.0; SiamCAR 3.0)."""

    cls: float = Field(default=1.0, ge=0, description="Classification loss weight.")
    loc: float = Field(default=1.0, ge=0, description="Box regression loss weight.")
    cen: float = Field(
        default=1.0, ge=0, description="Centerness loss weight (CAR; 0 disables, as in DCFNet)."
    )
    margin: float = Field(default=1.0, ge=0, description="Correlation-map margin loss weight (rpn_margin).")
    box_loss: Literal["linear_iou", "log_iou", "giou", "diou"] = Field(
        default="linear_iou",
        description="Anchor-free box loss: 1 - IoU (SiamBAN), -ln IoU (SiamCAR, DCFNet), GIoU or DIoU "
        "(SiamCAN).",
    )
    smooth_l1_beta: float = Field(
        default=0.0, ge=0, description="Smooth-L1 transition of the RPN delta loss; 0 is pysot's plain L1."
    )
    margin_value: float = Field(default=0.25, ge=0, lt=1, description="Cosine margin m of the margin loss.")
    margin_scale: float = Field(default=16.0, gt=0, description="Logit scale s of the margin loss.")


class LabelSettings(Strict):
    """Label assignment (see `siamstream.training.labels`)."""

    positive_iou: float = Field(default=0.6, description="RPN: anchors above this IoU are positive.")
    negative_iou: float = Field(default=0.3, description="RPN: anchors below this IoU are negative.")
    positives: int = Field(default=16, ge=1, description="Most positives kept per search crop.")
    total: int = Field(default=64, ge=2, description="Positives + negatives kept per search crop.")
    negatives_in_negative_pair: int = Field(
        default=16, ge=1, description="Negatives kept in a negative pair."
    )
    point_shape: Literal["ellipse", "circle_ellipse", "circle", "ellipse_centerness"] = Field(
        default="ellipse",
        description="Anchor-free (BAN, CAN) labels, the rows of SiamCAN's label ablation (paper 002, Table "
        "3): SiamBAN's 'Ellipse label' (positive in the small ellipse E2, negative outside E1), SiamCAN's "
        "'Ellipse&circle' (positive in the circle C2, negative outside E1), 'Circle label' (positive in "
        "C2, negative outside the circle of twice C2's radius), or 'Ellipse label+centerness': SiamBAN's "
        "ellipses with the box loss of each positive weighted by its FCOS centerness target, as SiamCAR "
        "weights its IoU loss (no centerness branch is added to the network).",
    )
    car_central_fraction: float = Field(
        default=0.6, ge=0, lt=1, description="CAR: positive where each side distance > this x half side."
    )
    siamfc_radius: float = Field(default=16.0, gt=0, description="SiamFC: positive disk radius, crop px.")


class Augmentation(Strict):
    """Random changes of one crop (pysot `Augmentation`). Shift is in output-crop pixels, scale a ratio."""

    shift: float = Field(description="Largest shift of the crop centre, output-crop px.")
    scale: float = Field(description="Largest relative change of the crop side (side x (1 +- scale)).")
    blur: float = Field(default=0.0, ge=0, le=1, description="Probability of a Gaussian blur.")
    flip: float = Field(default=0.0, ge=0, le=1, description="Probability of a horizontal flip.")
    color: float = Field(default=1.0, ge=0, le=1, description="Probability of a per-channel gain jitter.")
    grey: float = Field(default=0.0, ge=0, le=1, description="Probability of greyscale.")


class PairSettings(Strict):
    """How template/search pairs are drawn."""

    frame_range: int = Field(default=100, ge=0, description="Largest frame gap between template and search.")
    negative_probability: float = Field(
        default=0.2, ge=0, le=1, description="Probability that the search frame comes from another sequence."
    )
    template: Augmentation = Field(default_factory=lambda: Augmentation(shift=4, scale=0.05))
    search: Augmentation = Field(default_factory=lambda: Augmentation(shift=64, scale=0.18, blur=0.2))


class TrainingConfig(Strict):
    """Everything `siamstream train` needs besides the tracker config and the data."""

    epochs: int = Field(default=20, ge=1, description="Number of epochs.")
    batch_size: int = Field(default=32, ge=1, description="Pairs per step.")
    pairs_per_epoch: int = Field(
        default=600_000, ge=1, description="Pairs drawn per epoch (pysot VIDEOS_PER_EPOCH)."
    )
    search_size: int | None = Field(
        default=None,
        description="Search crop side while training; None = the tracker's instance size. pysot trains "
        "every tracker at 255, including the AlexNet RPN that tracks at 287.",
    )
    num_workers: int = Field(default=4, ge=0, description="DataLoader worker processes.")
    seed: int = Field(default=0, ge=0, description="Seed of pair sampling, augmentation and label sampling.")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(default=1e-4, ge=0, description="SGD weight decay.")
    grad_clip: float = Field(default=10.0, gt=0, description="Largest gradient L2 norm (pysot GRAD_CLIP).")
    lr: LRSchedule = Field(default_factory=LRSchedule)
    backbone: BackboneTraining = Field(default_factory=BackboneTraining)
    loss: LossWeights = Field(default_factory=LossWeights)
    labels: LabelSettings = Field(default_factory=LabelSettings)
    pairs: PairSettings = Field(default_factory=PairSettings)
    amp: bool = Field(
        default=True, description="Mixed precision (fp16 autocast + grad scaling) on CUDA only."
    )
    objective: str | None = Field(
        default=None, description="Registered objective name; None = the one named like the head kind."
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if self.lr.warmup_epochs >= self.epochs and self.epochs > 1:
            raise ValueError("warm-up must be shorter than training")
        if self.labels.positives >= self.labels.total:
            raise ValueError("labels.total must exceed labels.positives")
        return self


# Backbones that have no pre-trained weights (the small staged backbone of the from-scratch study): every
# recipe trains them whole from the first epoch at the head's learning rate, as DCFNet's stage 1 and
# siamfc-pytorch do. Freezing them, or fine-tuning only the layers a pre-trained backbone would, would
# leave layers at their random initialisation (with batch norms frozen at it).
FROM_SCRATCH_BACKBONES = ("small_staged", "small_staged_fused")
FROM_SCRATCH = BackboneTraining(unfreeze_epoch=0, lr_multiplier=1.0)


RecipeFactory = Callable[[TrackerConfig], TrainingConfig]
_RECIPES: dict[str, RecipeFactory] = {}


def register_recipe(head_kind: str) -> Callable[[RecipeFactory], RecipeFactory]:
    """Register the default training recipe of the trackers whose head is `head_kind`, a function of the
    tracker config; each head kind's recipe is registered beside its default objective
    (`training.objectives`, `training.objectives_dcf_can`), which `siamstream.training` imports."""

    def decorate(recipe: RecipeFactory) -> RecipeFactory:
        if head_kind in _RECIPES:
            raise ValueError(f"the training recipe of head kind {head_kind!r} is registered twice")
        _RECIPES[head_kind] = recipe
        return recipe

    return decorate


def default_training_config(tracker: TrackerConfig) -> TrainingConfig:
    """pysot/SiamBAN/SiamCAR/siamfc-pytorch defaults (the seed papers' own recipes for DCFNet and SiamCAN)
    for a tracker's head kind and backbone; a backbone in `FROM_SCRATCH_BACKBONES` is trained whole from
    the start."""
    recipe = _RECIPES.get(tracker.head.kind)
    if recipe is None:
        raise ValueError(f"{tracker.name}: no training recipe for head kind {tracker.head.kind!r}")
    training = recipe(tracker)
    if tracker.backbone.kind in FROM_SCRATCH_BACKBONES:
        return training.model_copy(update={"backbone": FROM_SCRATCH})
    return training


def pysot_backbone_training(tracker: TrackerConfig) -> BackboneTraining:
    """pysot's backbone schedule (BACKBONE.TRAIN_LAYERS of its ResNet-50 and MobileNetV2 configs)."""
    layers: tuple[str, ...] = ()
    if tracker.backbone.kind == "resnet50_atrous":
        layers = ("layer2", "layer3", "layer4")
    elif tracker.backbone.kind == "mobilenetv2":
        layers = ("layer3", "layer4", "layer5", "layer6", "layer7")
    return BackboneTraining(layers=layers)


def pysot_search_size(tracker: TrackerConfig) -> int | None:
    """pysot trains every tracker at a 255 search crop, including the AlexNet RPN that tracks at 287."""
    return 255 if tracker.crop.instance_size != 255 else None


def with_schedule(training: TrainingConfig, schedule: dict[str, Any]) -> TrainingConfig:
    """`training` with every field that `schedule` names replaced, sections merged field by field.

    `schedule` holds `TrainingConfig` fields nested as in the config (e.g. `{"lr": {"base_lr": 0.01}}`);
    every field it does not name, at any depth, keeps its value, so trackers keep their own labels,
    losses, objective and augmentation kinds while sharing a schedule.
    """
    return TrainingConfig.model_validate(merge_fields(training.model_dump(mode="json"), schedule))
