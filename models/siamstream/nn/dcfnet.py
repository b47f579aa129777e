"""DCFNet: staged depth-wise correlation and feature fusion, with SiamCAR's head without centerness.

Template stage: the plain backbone's stage-1 map, stage-2 map and the centre `KERNEL_SIDE` square of its
final map, laid end to end in one embedding (ResNet-50, 127 crop: 64x31x31, 512x15x15 and 256x7x7, 189,248
floats per stream). Search stage: the search backbone with the two correlation-fusions against the
template's stage maps, a depth-wise correlation of its final map (31x31 for the 255 crop) with the 7x7
kernel (25x25 response), and the classification/regression towers. The backbone is either staged
backbone with correlation-fusions (`StagedBackbone`: the trimmed ResNet-50, or the small one with the
same stage sides); the widths of the pieces and of the head are the backbone's. The paper's ablation
(`HeadConfig.fusion_stages`) fuses after one stage or none: the embedding then keeps only the stage maps
the backbone's fusions take, before the kernel (no fusion: the kernel alone).

Outputs follow the SiamCAR family (Contract 1): cls [B,2,S,S] (background, foreground logits), loc
[B,4,S,S] (`l, t, r, b` in search-crop pixels, exponentiated), and cen [B,1,S,S]. DCFNet has no centerness
branch (the paper drops it), so `cen` is a flat map of zeros: SiamCAR's post-processing min-max normalises
a flat map to all ones, which makes its `p_score = penalty * cls * centerness` exactly `penalty * cls`.
"""

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from siamstream.config import TrackerConfig
from siamstream.nn.backbones import build_backbone
from siamstream.nn.car_head import car_tower, init_head_convs
from siamstream.nn.correlation import xcorr_depthwise
from siamstream.nn.embedding_layout import concat_pieces, piece_size, split_pieces
from siamstream.nn.network import SiameseNetwork, register_network
from siamstream.nn.small_staged import SmallStagedCorrelationBackbone
from siamstream.nn.staged_correlation import FUSED_STAGES, StagedCorrelationBackbone

StagedBackbone = StagedCorrelationBackbone | SmallStagedCorrelationBackbone

# Side of the template kernel of the final correlation: the centre crop pysot's neck takes, so that a
# 255 search map (31) against it gives the 25x25 score map of the SiamCAR geometry.
KERNEL_SIDE = 7


class DCFHead(nn.Module):
    """SiamCAR's towers without centerness, initialised as SiamCAR's: `cls_tower` -> `cls_logits` (2),
    `bbox_tower` -> `bbox_pred` (4, exponentiated). Input: the correlation map [B,C,S,S]; outputs cls
    [B,2,S,S], loc [B,4,S,S]."""

    def __init__(self, channels: int):
        super().__init__()
        self.cls_tower = car_tower(channels)
        self.bbox_tower = car_tower(channels)
        self.cls_logits = nn.Conv2d(channels, 2, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        init_head_convs(self)

    def forward(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        cls = self.cls_logits(self.cls_tower(feature))
        return cls, torch.exp(self.bbox_pred(self.bbox_tower(feature)))


def center_crop(feature: Tensor, side: int) -> Tensor:
    """The centre `side` x `side` square of a map [B,C,H,W] (start (H - side) // 2, as pysot's neck)."""
    top = (feature.size(2) - side) // 2
    left = (feature.size(3) - side) // 2
    return feature[:, :, top : top + side, left : left + side]


class DCFNetwork(SiameseNetwork):
    """DCFNet (`backbone`: a `StagedBackbone`, `car_head`: `DCFHead`); see the module doc.

    `template_shapes` are the per-stream shapes of the embedding's pieces: [the map of each fused stage,
    kernel] ([stage-1 map, stage-2 map, kernel] with both fusions). Outputs: cls, loc, cen (flat zeros).
    """

    if TYPE_CHECKING:
        # Declared for the type checker only: TorchScript would read a class annotation as the type of
        # the submodule, which it cannot be.
        backbone: StagedBackbone

    search_output_names = ("cls", "loc", "cen")
    # The template holds the template branch's stage maps, which the search branch never computes
    # (its maps are fused): there is no search feature map to blend into it.
    feature_map_template = False

    def __init__(self, backbone: StagedBackbone, car_head: DCFHead, template_sides: tuple[int, int]):
        channels = backbone.out_channels
        super().__init__(backbone, None, 1, channels, KERNEL_SIDE)
        self.car_head = car_head
        self.kernel_side = KERNEL_SIDE
        self.template_shapes = [
            [backbone.stage_channels[stage - 1], template_sides[stage - 1], template_sides[stage - 1]]
            for stage in backbone.fusion_stages
        ]
        self.template_shapes.append([channels, KERNEL_SIDE, KERNEL_SIDE])
        self.embedding_dim = sum(piece_size(shape) for shape in self.template_shapes)

    def template_embedding(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        # The stage methods, not `forward`: the small backbone's `forward` returns its used levels.
        stage1 = self.backbone.stage1(crop_z)
        stage2 = self.backbone.stage2(stage1)
        pieces: list[Tensor] = []
        if self.backbone.fusion1 is not None:
            pieces.append(stage1)
        if self.backbone.fusion2 is not None:
            pieces.append(stage2)
        pieces.append(center_crop(self.backbone.last_layers(stage2), self.kernel_side))
        return concat_pieces(pieces)

    def fused_search(self, template_embedding: Tensor, crop_x: Tensor) -> tuple[Tensor, Tensor]:
        """(final fused search map [B,C,X',X'], template kernel [B,C,7,7]) of search crops [B,3,X,X]."""
        pieces = split_pieces(template_embedding, self.template_shapes)
        return self.backbone.fused(crop_x, pieces[:-1]), pieces[-1]

    def correlation_map(self, template_embedding: Tensor, crop_x: Tensor) -> Tensor:
        """The head's input [B,C,S,S]: the fused search map correlated with the template kernel."""
        search_map, kernel = self.fused_search(template_embedding, crop_x)
        return xcorr_depthwise(search_map, kernel)

    def search_outputs(self, template_embedding: Tensor, crop_x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cls, loc = self.car_head(self.correlation_map(template_embedding, crop_x))
        return cls.float(), loc.float(), torch.zeros_like(cls[:, :1]).float()


@register_network("dcf")
def build_dcfnet(config: TrackerConfig) -> DCFNetwork:
    """The DCFNet of a config with head kind "dcf" (backbone "dcfnet_resnet50" or "small_staged_fused", no
    neck)."""
    backbone = build_backbone(config.backbone, config.head.fusion_stages)
    if not isinstance(backbone, StagedBackbone) or config.neck is not None:
        raise ValueError(
            f"{config.name}: DCFNet needs a staged backbone with correlation-fusions "
            "(dcfnet_resnet50, small_staged_fused) and no neck"
        )
    if tuple(config.backbone.used_layers) != FUSED_STAGES:
        raise ValueError(
            f"{config.name}: DCFNet fuses after the stages {FUSED_STAGES}, not {config.backbone.used_layers}"
        )
    head = config.head
    channels = backbone.out_channels
    if head.in_channels != channels or head.levels != 1:
        raise ValueError(
            f"{config.name}: the DCFNet head takes one depth-wise correlated level of {channels} channels"
        )
    return DCFNetwork(backbone, DCFHead(channels), backbone.output_sides(config.crop.exemplar_size))
