"""Depth-wise correlation blocks shared by the SiamRPN++ and SiamBAN heads, and their level fusion.

Layouts follow pysot's `DepthwiseXCorr` / `DepthwiseRPN` / `MultiRPN` and siamban's `DepthwiseBAN` /
`MultiBAN`. The template side (`conv_kernel`) is split from the search side so that it runs once per
target, not once per frame. `MultiBoxHead` (the levels and their fusion) also carries the ACM box heads.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from siamstream.nn.correlation import xcorr_depthwise


def _conv3x3_bn_relu(in_channels: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)
    )


class CorrelationBranch(nn.Module):
    """One branch of a box level: `template_kernel(template map)` once per target, `forward(kernel,
    search map)` per frame (`DepthwiseXCorr`, `nn.matched_xcorr.MatchedXCorr`)."""

    def template_kernel(self, template_feature: Tensor) -> Tensor:
        raise NotImplementedError


class DepthwiseXCorr(CorrelationBranch):
    """`conv_kernel` / `conv_search` (3x3 conv, BN, ReLU), depth-wise correlation, then `head`.

    `head` is 1x1 conv (no bias), BN, ReLU, 1x1 conv (bias) to `out_channels`. For 7x7 template and 31x31
    search maps the kernel is 5x5 and the output 25x25.
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.conv_kernel = _conv3x3_bn_relu(in_channels, hidden)
        self.conv_search = _conv3x3_bn_relu(in_channels, hidden)
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1),
        )

    def template_kernel(self, template_feature: Tensor) -> Tensor:
        """Correlation kernel [B,hidden,k-2,k-2] of a template map [B,C,k,k]."""
        return self.conv_kernel(template_feature)

    def forward(self, kernel: Tensor, search_feature: Tensor) -> Tensor:
        return self.head(xcorr_depthwise(self.conv_search(search_feature), kernel))


class BoxLevel(nn.Module):
    """One level of a box head: a `cls` and a `loc` `CorrelationBranch`."""

    def __init__(self, cls: CorrelationBranch, loc: CorrelationBranch):
        super().__init__()
        self.cls = cls
        self.loc = loc

    def template_kernels(self, template_features: list[Tensor]) -> list[Tensor]:
        """`[cls_kernel, loc_kernel]` of the single template map."""
        return [
            self.cls.template_kernel(template_features[0]),
            self.loc.template_kernel(template_features[0]),
        ]

    def forward(self, kernels: list[Tensor], search_features: list[Tensor]) -> tuple[Tensor, Tensor]:
        return self.cls(kernels[0], search_features[0]), self.loc(kernels[1], search_features[0])


class DepthwiseBoxLevel(BoxLevel):
    """A `BoxLevel` of depth-wise branches (pysot `DepthwiseRPN`, siamban `DepthwiseBAN`).

    Also usable as a whole single-level head: it takes and returns the same lists as the multi-level heads.
    """

    def __init__(self, in_channels: int, cls_channels: int, loc_channels: int):
        super().__init__(
            DepthwiseXCorr(in_channels, in_channels, cls_channels),
            DepthwiseXCorr(in_channels, in_channels, loc_channels),
        )


def fuse_levels(maps: list[Tensor], level_weight: Tensor | None) -> Tensor:
    """Softmax(`level_weight`)-weighted sum of per-level maps, or their plain mean without weights."""
    if level_weight is None:
        total = maps[0]
        for level_map in maps[1:]:
            total = total + level_map
        return total / len(maps)
    weight = F.softmax(level_weight, 0)
    fused = maps[0] * weight[0]
    for index in range(1, len(maps)):
        fused = fused + maps[index] * weight[index]
    return fused


class MultiBoxHead(nn.ModuleDict):
    """Box levels `{level_name}2`, `{level_name}3`, ..., each a `cls` and a `loc` branch, and their fusion.

    `level_name` is `rpn` for SiamRPN++ (loc: raw anchor deltas) and `box` for SiamBAN (with `loc_scale`
    [levels]: loc = exp(loc * loc_scale[level]) before the fusion, distances in search-crop pixels).
    Weighted heads fuse by softmax(`cls_weight`) / softmax(`loc_weight`) [levels], the others by a mean.
    `box_levels` are in level order; each takes its `[cls, loc]` template pieces and `[its search map]`,
    like `DepthwiseBoxLevel`. Subclasses add the template side.
    """

    def __init__(self, level_name: str, box_levels: Sequence[nn.Module], weighted: bool):
        levels = len(box_levels)
        super().__init__({f"{level_name}{2 + index}": level for index, level in enumerate(box_levels)})
        self.cls_weight = nn.Parameter(torch.ones(levels)) if weighted else None
        self.loc_weight = nn.Parameter(torch.ones(levels)) if weighted else None
        self.loc_scale = nn.Parameter(torch.ones(levels)) if level_name == "box" else None

    def forward(self, pieces: list[Tensor], search_features: list[Tensor]) -> tuple[Tensor, Tensor]:
        cls_maps: list[Tensor] = []
        loc_maps: list[Tensor] = []
        loc_scale = self.loc_scale
        for index, level in enumerate(self.values()):
            cls, loc = level(pieces[2 * index : 2 * index + 2], [search_features[index]])
            cls_maps.append(cls)
            loc_maps.append(loc if loc_scale is None else torch.exp(loc * loc_scale[index]))
        return fuse_levels(cls_maps, self.cls_weight), fuse_levels(loc_maps, self.loc_weight)


class MultiDepthwiseBox(MultiBoxHead):
    """`DepthwiseBoxLevel`s: pysot's `MultiRPN` (`level_name` "rpn", cls [B,2A,S,S] laid out
    `[bg x A, fg x A]`, loc [B,4A,S,S] laid out `[dx, dy, dw, dh] x A`) and siamban's `MultiBAN` ("box",
    cls [B,2,S,S] background, foreground; loc [B,4,S,S] the distances `(l, t, r, b)` from each point to
    the box sides). ACM's parameter-matched control (`nn.matched_xcorr.MatchedBoxLevel`) uses it too."""

    def template_kernels(self, template_features: list[Tensor]) -> list[Tensor]:
        """`[cls, loc]` kernels of each level in turn."""
        kernels: list[Tensor] = []
        for index, level in enumerate(self.values()):
            # A ModuleDict yields `nn.Module`s, and TorchScript takes no cast: each level is a `BoxLevel`.
            kernels.extend(level.template_kernels([template_features[index]]))  # type: ignore[operator]
        return kernels
