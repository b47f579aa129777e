"""SiamBAN head: depth-wise box levels `box2..4`, per-level `exp(loc * loc_scale)`, then fusion (siamban)."""

import torch
from torch import Tensor, nn

from siamstream.nn.depthwise import DepthwiseBoxLevel, fuse_levels


class MultiBAN(nn.ModuleDict):
    """Levels `box2`, `box3`, ..., `loc_scale` [levels] and, when weighted, `cls_weight` / `loc_weight`.

    Outputs: cls [B,2,S,S] (background, foreground) and loc [B,4,S,S], the distances `(l, t, r, b)` in
    search-crop pixels from each point to the box sides, exponentiated per level before fusion.
    """

    def __init__(self, in_channels: int, levels: int, weighted: bool):
        super().__init__(
            {f"box{level}": DepthwiseBoxLevel(in_channels, 2, 4) for level in range(2, 2 + levels)}
        )
        self.cls_weight = nn.Parameter(torch.ones(levels)) if weighted else None
        self.loc_weight = nn.Parameter(torch.ones(levels)) if weighted else None
        self.loc_scale = nn.Parameter(torch.ones(levels))

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
            loc_maps.append(torch.exp(loc * self.loc_scale[index]))
        return fuse_levels(cls_maps, self.cls_weight), fuse_levels(loc_maps, self.loc_weight)
