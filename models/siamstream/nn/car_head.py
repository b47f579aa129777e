"""SiamCAR head: classification and box towers over the fused correlation map (ohhhyeahhh/SiamCAR)."""

import torch
from torch import Tensor, nn

TOWER_CONVS = 4
GROUP_NORM_GROUPS = 32
# ohhhyeahhh/SiamCAR pysot/models/head/car_head.py (`CARHead.__init__`, "initialization"): every conv of
# the towers and output layers starts from normal(0, 0.01) weights and zero biases.
INIT_WEIGHT_STD = 0.01


def init_head_convs(head: nn.Module) -> None:
    """SiamCAR's head initialisation for training from scratch: each conv of `head` gets normal(0,
    `INIT_WEIGHT_STD`) weights and zero biases. (The reference then sets both `cls_logits` biases to the
    focal-loss prior -log(99) of `TRAIN.PRIOR_PROB` 0.01: equal on both logits, a two-way softmax does not
    see it, so the cross-entropy-trained head is left at zero.) Loaded weights replace all of it."""
    for module in head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=INIT_WEIGHT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def car_tower(channels: int) -> nn.Sequential:
    """`TOWER_CONVS` x (3x3 conv with bias, GroupNorm(32), ReLU); keys `{0,1,3,4,6,7,9,10}`."""
    layers: list[nn.Module] = []
    for _ in range(TOWER_CONVS):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(GROUP_NORM_GROUPS, channels),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers)


class CARHead(nn.Module):
    """`cls_tower` -> `cls_logits` (2) and `centerness` (1); `bbox_tower` -> `bbox_pred` (4, exponentiated).

    Input: the fused correlation map [B,C,S,S]. Outputs: cls [B,2,S,S], loc [B,4,S,S] (`l, t, r, b`
    distances in search-crop pixels), cen [B,1,S,S] (logits).
    """

    def __init__(self, channels: int, num_classes: int = 2):
        super().__init__()
        self.cls_tower = car_tower(channels)
        self.bbox_tower = car_tower(channels)
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        init_head_convs(self)

    def forward(self, feature: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cls_feature = self.cls_tower(feature)
        loc = torch.exp(self.bbox_pred(self.bbox_tower(feature)))
        return self.cls_logits(cls_feature), loc, self.centerness(cls_feature)
