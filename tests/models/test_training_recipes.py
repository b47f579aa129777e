"""Each tracker's default training recipe against the values of its public reference, written down here
from the reference files named beside them (not derived from `siamstream.training`)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from siamstream.nn.car_head import CARHead
from siamstream.nn.dcfnet import DCFHead
from siamstream.registry import get_config
from siamstream.training import build_objective, default_training_config
from siamstream.training.losses import BOX_LOSSES
from siamstream.training.objectives import PointObjective

# Values shared by the pysot-based references (pysot/core/config.py of each repository, and each
# experiments/*/config.yaml): 20 epochs, SGD momentum 0.9, weight decay 1e-4, gradient clip 10, 5 warm-up
# epochs 0.001 -> 0.005 then log decay from 0.005, layer2..4 of the ResNet-50 trained from epoch 10 at
# 0.1 x the lr, template shift 4 / scale 0.05, search shift 64 / scale 0.18 / blur 0.2.
PYSOT_COMMON = {
    "epochs": 20,  # TRAIN.EPOCH
    "momentum": 0.9,  # TRAIN.MOMENTUM
    "weight_decay": 1e-4,  # TRAIN.WEIGHT_DECAY
    "grad_clip": 10.0,  # TRAIN.GRAD_CLIP
    "lr.warmup_epochs": 5,  # TRAIN.LR_WARMUP.EPOCH
    "lr.warmup_start_lr": 0.001,  # TRAIN.LR_WARMUP.KWARGS.start_lr
    "lr.base_lr": 0.005,  # TRAIN.BASE_LR, LR.KWARGS.start_lr
    "lr.decay": "log",  # TRAIN.LR.TYPE
    "backbone.layers": ("layer2", "layer3", "layer4"),  # BACKBONE.TRAIN_LAYERS
    "backbone.unfreeze_epoch": 10,  # BACKBONE.TRAIN_EPOCH
    "backbone.lr_multiplier": 0.1,  # BACKBONE.LAYERS_LR
    "pairs.template.shift": 4,  # DATASET.TEMPLATE.SHIFT
    "pairs.template.scale": 0.05,  # DATASET.TEMPLATE.SCALE
    "pairs.search.shift": 64,  # DATASET.SEARCH.SHIFT
    "pairs.search.scale": 0.18,  # DATASET.SEARCH.SCALE
    "pairs.search.blur": 0.2,  # DATASET.SEARCH.BLUR
}

# hqucv/siamban experiments/siamban_r50_l234/config.yaml and siamban/core/config.py (SiamBAN-ACM,
# wencheng256/SiamBAN-ACM, trains with the same code and has no experiment file of its own).
SIAMBAN = {
    "batch_size": 28,  # TRAIN.BATCH_SIZE
    "lr.end_lr": 0.00005,  # TRAIN.LR.KWARGS.end_lr
    "pairs_per_epoch": 1_000_000,  # DATASET.VIDEOS_PER_EPOCH
    "pairs.negative_probability": 0.2,  # DATASET.NEG
    "loss.cls": 1.0,  # TRAIN.CLS_WEIGHT
    "loss.loc": 1.0,  # TRAIN.LOC_WEIGHT
    "loss.box_loss": "linear_iou",  # siamban/models/loss.py select_iou_loss -> iou_loss.py linear_iou
    "labels.point_shape": "ellipse",  # siamban/datasets/point_target.py: E2 positive, outside E1 negative
    "labels.positives": 16,  # TRAIN.POS_NUM
    "labels.total": 64,  # TRAIN.TOTAL_NUM
    "labels.negatives_in_negative_pair": 16,  # TRAIN.NEG_NUM
}

# ohhhyeahhh/SiamCAR experiments/siamcar_r50/config.yaml and pysot/core/config.py.
SIAMCAR = {
    "batch_size": 80,  # TRAIN.BATCH_SIZE ("80 # 32")
    "lr.end_lr": 0.0005,  # TRAIN.LR.KWARGS.end_lr
    "pairs_per_epoch": 600_000,  # DATASET.VIDEOS_PER_EPOCH (pysot/core/config.py)
    "pairs.negative_probability": 0.0,  # DATASET.NEG
    "loss.cls": 1.0,  # TRAIN.CLS_WEIGHT
    "loss.loc": 3.0,  # TRAIN.LOC_WEIGHT
    "loss.cen": 1.0,  # TRAIN.CEN_WEIGHT
    "loss.box_loss": "log_iou",  # pysot/models/loss_car.py IOULoss: -log((I + 1) / (U + 1))
    "labels.car_central_fraction": 0.6,  # loss_car.py compute_targets_for_locations: 0.6 x half side
}

RECIPES: dict[str, dict[str, Any]] = {
    "siamban_r50": PYSOT_COMMON | SIAMBAN,
    "siamban_acm_r50": PYSOT_COMMON | SIAMBAN,
    "siamcar_r50": PYSOT_COMMON | SIAMCAR,
    # Paper 001 (DCFNet), eq. 4-5: cross-entropy + the IoU loss of its [35], UnitBox (-ln IoU), no
    # centerness; positive anywhere inside the box.
    "dcfnet_r50": {
        "loss.cls": 1.0,
        "loss.loc": 1.0,
        "loss.cen": 0.0,
        "loss.box_loss": "log_iou",
        "labels.car_central_fraction": 0.0,
    },
}


def setting(config: object, dotted: str) -> object:
    for name in dotted.split("."):
        config = getattr(config, name)
    return config


@pytest.mark.parametrize("tracker", list(RECIPES))
def test_default_training_config_is_the_reference_recipe(tracker: str) -> None:
    training = default_training_config(get_config(tracker))
    recorded = {name: setting(training, name) for name in RECIPES[tracker]}
    assert recorded == RECIPES[tracker]


@pytest.mark.parametrize("tracker", list(RECIPES))
def test_objective_trains_with_the_recipes_box_loss(tracker: str) -> None:
    config = get_config(tracker)
    objective = build_objective(config, default_training_config(config))
    assert isinstance(objective, PointObjective)  # every recipe here is BAN's or CAR's
    assert objective.box_loss is BOX_LOSSES[RECIPES[tracker]["loss.box_loss"]]


@pytest.mark.parametrize("head", [CARHead(256), DCFHead(256)], ids=["siamcar", "dcfnet"])
def test_car_head_convs_start_from_normal_001_and_zero_bias(head: nn.Module) -> None:
    # ohhhyeahhh/SiamCAR pysot/models/head/car_head.py, "initialization": normal_(std=0.01), constant_(0)
    # on every conv of the towers and output layers. PyTorch's own default would be uniform with std
    # 1/sqrt(3 x 256 x 9) = 0.012 and non-zero biases.
    convs = [module for module in head.modules() if isinstance(module, nn.Conv2d)]
    assert len(convs) == 2 * 4 + (3 if isinstance(head, CARHead) else 2)
    for conv in convs:
        weights = conv.weight.detach().flatten()
        assert float(weights.std()) == pytest.approx(0.01, rel=0.05)
        assert abs(float(weights.mean())) < 0.001
        assert conv.bias is not None
        assert torch.equal(conv.bias.detach(), torch.zeros_like(conv.bias))
