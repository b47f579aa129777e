"""SiamRPN++ head: depth-wise RPN levels `rpn2..4`, fused by learned softmax weights or a mean (pysot)."""

import torch
from torch import Tensor, nn

from siamstream.nn.depthwise import DepthwiseBoxLevel, fuse_levels


class MultiRPN(nn.ModuleDict):
    """Levels `rpn2`, `rpn3`, ... and, when weighted, `cls_weight` / `loc_weight` [levels].

    Outputs: cls [B,2A,S,S] laid out `[bg x A, fg x A]`, loc [B,4A,S,S] laid out `[dx, dy, dw, dh] x A`.
    """

    def __init__(self, in_channels: int, levels: int, anchor_num: int, weighted: bool):
        super().__init__(
            {
                f"rpn{level}": DepthwiseBoxLevel(in_channels, 2 * anchor_num, 4 * anchor_num)
                for level in range(2, 2 + levels)
            }
        )
        self.cls_weight = nn.Parameter(torch.ones(levels)) if weighted else None
        self.loc_weight = nn.Parameter(torch.ones(levels)) if weighted else None

    def template_kernels(self, template_features: list[Tensor]) -> list[Tensor]:
        """`[cls, loc]` kernels of each level in turn."""
        kernels: list[Tensor] = []
        for index, level in enumerate(self.values()):
            kernels.extend(level.template_kernels([template_features[index]]))
        return kernels

    def forward(self, kernels: list[Tensor], search_features: list[Tensor]) -> tuple[Tensor, Tensor]:
        cls_maps: list[Tensor] = []
        loc_maps: list[Tensor] = []
        for index, level in enumerate(self.values()):
            cls, loc = level(kernels[2 * index : 2 * index + 2], [search_features[index]])
            cls_maps.append(cls)
            loc_maps.append(loc)
        return fuse_levels(cls_maps, self.cls_weight), fuse_levels(loc_maps, self.loc_weight)
