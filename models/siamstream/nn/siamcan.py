"""SiamCAN: cross-attention guided Siamese network with anchor-free (SiamBAN-style) regression.

"SiamCAN: simple yet effective method to enhance Siamese short-term tracking". Per level (ResNet-50 layers
2, 3, 4 with 256-channel necks, the template cropped to its centre 7x7):
- cross-channel attention: weights V [B,256] from the template map (`ChannelAttention`) multiply the
  search map;
- a `cls` and a `loc` branch, each SiamBAN's depth-wise block (`conv_kernel` / `conv_search` 3x3 conv, BN,
  ReLU; depth-wise correlation, 25x25 for 255 crops) with self-spatial attention on the correlation map
  before the two 1x1 convolutions of `head` (to 2 and 4 channels);
- loc per level `exp(loc * loc_scale[l])` as SiamBAN (the distances must be positive; the paper leaves
  this to its SiamBAN base); levels fused by the learned weights alpha, softmax-normalised, one set
  shared by cls and loc as in the paper's eq. 8-9 (`level_weight`).
The template stage keeps everything that depends on the template only: per level the cls and loc kernels
[256,5,5] and V [256] (3 x 13,056 = 39,168 floats per stream). Outputs follow the SiamBAN family
(Contract 1): cls [B,2,S,S] (background, foreground), loc [B,4,S,S] (`l, t, r, b`, crop pixels).
The paper's component ablation (Table 4) switches either attention off (`HeadConfig.channel_attention`,
`spatial_attention`): the module is not built and its map passes as it is; without channel attention
the embedding keeps only the two kernels per level.
"""

import torch
from torch import Tensor, nn

from siamstream.config import TrackerConfig
from siamstream.nn.attention import ChannelAttention, SpatialAttention, apply_channel_weights
from siamstream.nn.backbones import Backbone, build_backbone
from siamstream.nn.correlation import xcorr_depthwise
from siamstream.nn.depthwise import DepthwiseXCorr, fuse_levels
from siamstream.nn.embedding_layout import concat_pieces, piece_size, split_pieces
from siamstream.nn.neck import Neck
from siamstream.nn.network import KERNEL_BORDER, SiameseNetwork, register_network


class AttentiveXCorr(DepthwiseXCorr):
    """SiamBAN's depth-wise block with self-spatial attention (`spatial_attention`) between the
    correlation and `head`; without it (`spatial_kernel` None) the block is SiamBAN's."""

    def __init__(self, channels: int, out_channels: int, spatial_kernel: int | None):
        super().__init__(channels, channels, out_channels)
        self.spatial_attention = None if spatial_kernel is None else SpatialAttention(spatial_kernel)

    def forward(self, kernel: Tensor, search_feature: Tensor) -> Tensor:
        response = xcorr_depthwise(self.conv_search(search_feature), kernel)
        if self.spatial_attention is not None:
            response = self.spatial_attention(response)
        return self.head(response)


class CANLevel(nn.Module):
    """One level: `channel_attention` (absent when `channel_kernel` is None), `cls` (2 channels) and `loc`
    (4 channels, not yet exponentiated)."""

    def __init__(self, channels: int, channel_kernel: int | None, spatial_kernel: int | None):
        super().__init__()
        self.channel_attention = None if channel_kernel is None else ChannelAttention(channel_kernel)
        self.cls = AttentiveXCorr(channels, 2, spatial_kernel)
        self.loc = AttentiveXCorr(channels, 4, spatial_kernel)

    def template_pieces(self, template_feature: Tensor) -> list[Tensor]:
        """`[cls kernel [B,C,k-2,k-2], loc kernel, channel weights [B,C]]` of a template map [B,C,k,k]
        (the two kernels alone without channel attention)."""
        pieces = [self.cls.template_kernel(template_feature), self.loc.template_kernel(template_feature)]
        if self.channel_attention is not None:
            pieces.append(self.channel_attention(template_feature))
        return pieces

    def forward(self, pieces: list[Tensor], search_feature: Tensor) -> tuple[Tensor, Tensor]:
        attended = search_feature
        if self.channel_attention is not None:
            attended = apply_channel_weights(search_feature, pieces[2])
        return self.cls(pieces[0], attended), self.loc(pieces[1], attended)


class MultiCAN(nn.ModuleDict):
    """Levels `box2`, `box3`, ..., `loc_scale` [levels] and, when weighted, `level_weight` [levels] (alpha;
    a plain mean of the levels otherwise). A kernel size of None leaves that attention out."""

    def __init__(
        self,
        channels: int,
        levels: int,
        weighted: bool,
        channel_kernel: int | None,
        spatial_kernel: int | None,
    ):
        super().__init__(
            {
                f"box{level}": CANLevel(channels, channel_kernel, spatial_kernel)
                for level in range(2, 2 + levels)
            }
        )
        self.level_weight = nn.Parameter(torch.ones(levels)) if weighted else None
        self.loc_scale = nn.Parameter(torch.ones(levels))
        self.pieces_per_level = 2 if channel_kernel is None else 3

    def template_pieces(self, template_features: list[Tensor]) -> list[Tensor]:
        """Each level's `pieces_per_level` pieces in turn (`CANLevel.template_pieces`)."""
        pieces: list[Tensor] = []
        for index, level in enumerate(self.values()):
            # A ModuleDict yields `nn.Module`s, and TorchScript takes no cast: each level is a `CANLevel`.
            pieces.extend(level.template_pieces(template_features[index]))  # type: ignore[operator]
        return pieces

    def forward(self, pieces: list[Tensor], search_features: list[Tensor]) -> tuple[Tensor, Tensor]:
        cls_maps: list[Tensor] = []
        loc_maps: list[Tensor] = []
        count = self.pieces_per_level
        for index, level in enumerate(self.values()):
            cls, loc = level(pieces[count * index : count * (index + 1)], search_features[index])
            cls_maps.append(cls)
            loc_maps.append(torch.exp(loc * self.loc_scale[index]))
        return fuse_levels(cls_maps, self.level_weight), fuse_levels(loc_maps, self.level_weight)


class SiamCANNetwork(SiameseNetwork):
    """SiamCAN (`backbone`, `neck`, `head`: `MultiCAN`); see the module docstring.

    Embedding: per level [cls kernel, loc kernel, channel weights] (no channel weights without channel
    attention). Outputs: cls [B,2,S,S], loc [B,4,S,S].
    """

    search_output_names = ("cls", "loc")

    def __init__(self, backbone: Backbone, neck: Neck, head: MultiCAN, kernel_side: int, channels: int):
        levels = len(head)
        super().__init__(backbone, neck, 2 * levels, channels, kernel_side)
        self.head = head
        kernel = [channels, kernel_side, kernel_side]
        level_shapes = [kernel, kernel]
        if head.pieces_per_level == 3:  # and the channel weights V
            level_shapes.append([channels])
        self.template_shapes = level_shapes * levels
        self.embedding_dim = sum(piece_size(shape) for shape in self.template_shapes)

    def template_from_features(self, template_features: list[Tensor]) -> Tensor:
        return concat_pieces(self.head.template_pieces(template_features))

    def head_outputs(
        self, template_embedding: Tensor, search_features: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        cls, loc = self.head(split_pieces(template_embedding, self.template_shapes), search_features)
        return cls.float(), loc.float()


@register_network("can")
def build_siamcan(config: TrackerConfig) -> SiamCANNetwork:
    """The SiamCAN of a config with head kind "can" (a backbone with a neck, several levels)."""
    head = config.head
    if config.neck is None or head.levels < 2:
        raise ValueError(f"{config.name}: SiamCAN needs a neck and several levels")
    backbone = build_backbone(config.backbone)
    neck = Neck(config.neck.in_channels, config.neck.out_channels, config.neck.center_crop)
    template_side = neck.output_side(backbone.output_side(config.crop.exemplar_size))
    can_head = MultiCAN(
        head.in_channels,
        head.levels,
        head.weighted,
        head.channel_attention_kernel if head.channel_attention else None,
        head.spatial_attention_kernel if head.spatial_attention else None,
    )
    return SiamCANNetwork(backbone, neck, can_head, template_side - KERNEL_BORDER, head.in_channels)
