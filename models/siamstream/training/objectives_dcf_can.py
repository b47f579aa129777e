"""Training of DCFNet and SiamCAN: their objectives and their papers' training recipes.

DCFNet trains in two stages (paper 001, section III-C and IV-A):
1. `dcf_pretrain`: SiamFC-style pre-training from scratch: the balanced logistic loss on the full
   cross-correlation of the fused search map with the template kernel (SiamFC's 0.001 response scale),
   every backbone layer trained (`dcfnet_pretraining_config`);
2. `dcf` (the head's default): fine-tuning of SiamCAR's head on SiamCAR's inside-box labels with
   cross-entropy plus UnitBox's IoU loss -ln IoU and no centerness term, the backbone frozen except its
   last two conv layers (`dcfnet_finetuning_config`; start from the stage-1 checkpoint with
   `siamstream train --init`).
SiamCAN (paper 002, sections 3.3-4.1; objective `can`): circle-inside-ellipse labels with at most 16
positive and 48 negative points, cross-entropy plus the DIoU loss (`siamcan_training_config`).
"""

from __future__ import annotations

from torch import Tensor

from siamstream.config import TrackerConfig
from siamstream.nn.correlation import xcorr_full
from siamstream.nn.dcfnet import DCFNetwork
from siamstream.nn.network import SiameseNetwork
from siamstream.training.config import (
    Augmentation,
    BackboneTraining,
    LabelSettings,
    LossWeights,
    LRSchedule,
    PairSettings,
    TrainingConfig,
    register_recipe,
)
from siamstream.training.objectives import CARObjective, PointObjective, SiamFCObjective, register_objective

# DCFNet fine-tunes its last two conv layers (with their batch norms) together with the head.
DCFNET_LAST_TWO_LAYERS = ("conv5", "bn5", "conv6", "bn6")


class DCFPretrainObjective(SiamFCObjective):
    """DCFNet stage 1: SiamFC disk labels and balanced logistic loss on `response` [B,1,S,S], the full
    cross-correlation of the fused search map with the template kernel times the head's `out_scale`."""

    head_kind = "dcf"

    def __init__(self, tracker: TrackerConfig, training: TrainingConfig):
        super().__init__(tracker, training)
        self.out_scale = tracker.head.out_scale

    def outputs(
        self, network: SiameseNetwork, template: Tensor, search: Tensor, box_prior: Tensor
    ) -> dict[str, Tensor]:
        if not isinstance(network, DCFNetwork):
            raise ValueError("the DCFNet pre-training objective needs a DCFNetwork")
        search_map, kernel = network.fused_search(network.template_embedding(template, box_prior), search)
        return {"response": xcorr_full(search_map, kernel) * self.out_scale}


class DCFObjective(CARObjective):
    """DCFNet stage 2: SiamCAR's inside-box labels, cross-entropy + box loss, no centerness term."""

    head_kind = "dcf"
    losses = PointObjective.losses


class CANObjective(PointObjective):
    """SiamCAN: the anchor-free point objective; its recipe picks circle-inside-ellipse labels and DIoU."""

    head_kind = "can"


register_objective("dcf")(DCFObjective)
register_objective("dcf", name="dcf_pretrain")(DCFPretrainObjective)
register_objective("can")(CANObjective)


@register_recipe("dcf")
def dcf_recipe(tracker: TrackerConfig) -> TrainingConfig:
    """DCFNet's default recipe is its stage 2 (`dcfnet_finetuning_config`); stage 1 is asked for by name."""
    return dcfnet_finetuning_config()


@register_recipe("can")
def can_recipe(tracker: TrackerConfig) -> TrainingConfig:
    """SiamCAN's paper recipe (`siamcan_training_config`)."""
    return siamcan_training_config()


# Paper 001: "grayscale, translate, flip and scale augmentations during only initialization" (no
# probabilities given: greyscale 0.25 and flip 0.5 here); fine-tuning keeps only the crop shift and scale
# that place the target off-centre.
_PRETRAIN_PAIRS = PairSettings(
    template=Augmentation(shift=4, scale=0.05, color=0.0, grey=0.25, flip=0.5),
    search=Augmentation(shift=64, scale=0.18, color=0.0, grey=0.25, flip=0.5),
)
_FINETUNE_PAIRS = PairSettings(
    template=Augmentation(shift=4, scale=0.05, color=0.0),
    search=Augmentation(shift=64, scale=0.18, color=0.0),
)


def dcfnet_pretraining_config() -> TrainingConfig:
    """Stage 1 (paper 001): 150 epochs at a constant lr of 0.01, SGD momentum 0.9, weight decay 5e-4,
    minibatch 72, the whole backbone trained from scratch."""
    return TrainingConfig(
        epochs=150,
        batch_size=72,
        weight_decay=5e-4,
        lr=LRSchedule(warmup_epochs=0, base_lr=0.01, decay="step", step_epochs=150),
        backbone=BackboneTraining(unfreeze_epoch=0, lr_multiplier=1.0),
        pairs=_PRETRAIN_PAIRS,
        objective="dcf_pretrain",
    )


def dcfnet_finetuning_config() -> TrainingConfig:
    """Stage 2 (paper 001): head plus the last two conv layers, cross-entropy + -ln IoU, no centerness;
    150 epochs at lr 0.01, 100 at 0.001 and 50 at 0.0001."""
    return TrainingConfig(
        epochs=300,
        batch_size=72,
        weight_decay=5e-4,
        lr=LRSchedule(warmup_epochs=0, base_lr=0.01, decay="milestones", milestones=(150, 250), gamma=0.1),
        backbone=BackboneTraining(unfreeze_epoch=0, layers=DCFNET_LAST_TWO_LAYERS, lr_multiplier=1.0),
        # Eq. 4-5: L_cls + L_reg with L_IoU of [35], UnitBox's -ln IoU; no centerness term.
        loss=LossWeights(cls=1.0, loc=1.0, cen=0.0, box_loss="log_iou"),
        labels=LabelSettings(car_central_fraction=0.0),
        pairs=_FINETUNE_PAIRS,
        objective="dcf",
    )


def siamcan_training_config() -> TrainingConfig:
    """Paper 002: 20 epochs, batch 28; the backbone frozen for 10 epochs, then its last 3 blocks trained;
    warm-up 0.001 -> 0.005 over 5 epochs, then exponential decay to 0.00005; circle-inside-ellipse labels
    with at most 16 positives and 48 negatives; cross-entropy and DIoU weighted 1 and 1."""
    return TrainingConfig(
        epochs=20,
        batch_size=28,
        lr=LRSchedule(warmup_epochs=5, warmup_start_lr=0.001, base_lr=0.005, decay="log", end_lr=0.00005),
        backbone=BackboneTraining(
            unfreeze_epoch=10, layers=("layer2", "layer3", "layer4"), lr_multiplier=0.1
        ),
        loss=LossWeights(cls=1.0, loc=1.0, box_loss="diou"),
        labels=LabelSettings(point_shape="circle_ellipse", positives=16, total=64),
        objective="can",
    )
