"""A small backbone with DCFNet's stage geometry, shared by every tracker of the from-scratch CPU study.

The ResNet-50 backbones take 5-10 s per training step on the development CPU. This one keeps the crop
geometry of the staged ResNet-50 (`nn.staged_correlation`): the same stage sides, the total stride 8
and so the same template, kernel and score-map sizes as the ResNet-50 trackers, with a few thin plain
convolutions (conv + BN + ReLU) instead of residual blocks. Sides for the 127 / 191 / 255 crops:
- stage 1, `conv1` 7x7 stride 2 unpadded, `conv2` 3x3 stride 2 padded, `conv3` 3x3 padded:
  `STAGE1_CHANNELS`, 31 / 47 / 63;
- stage 2, `layer1`: a 3x3 stride-2 unpadded conv (pysot's strided conv) and a 3x3 padded one:
  `STAGE2_CHANNELS`, 15 / 23 / 31;
- `conv4..conv6`: 3x3 padded convolutions at stride 8 with dilations 1, 2, 4 (receptive fields 59, 91
  and 155 crop px, for the three levels), `LEVEL_CHANNELS`, the last without ReLU as DCFNet's.
`used_layers` numbers the maps as DCFNet numbers its stages: 1 the stage-1 map, 2 the stage-2 map,
3..5 the outputs of conv4..conv6 (the multi-level heads use 3, 4, 5; DCFNet fuses after 1 and 2).
`SmallStagedCorrelationBackbone` adds DCFNet's two correlation-fusions (`fusion1`, `fusion2`) and its
fused search path. Crops are BGR [B,3,S,S], 0..255.
"""

from torch import Tensor, nn

from siamstream.nn.staged_correlation import FUSED_STAGES, FusedSearch

# Widths: with these a SiamRPN++ training step (batch 8, 191 search crops, one thread, the 32-wide neck
# and head of `trackers.small`) takes about 0.15 s of CPU on the development machine; with 64-wide levels,
# neck and heads about 0.27 s, most of it in the heads' search convolutions and depth-wise correlations.
STAGE1_CHANNELS = 16
STAGE2_CHANNELS = 32
LEVEL_CHANNELS = 32
LEVEL_DILATIONS = (1, 2, 4)
# Maps `used_layers` can name: stage 1, stage 2, and the outputs of conv4, conv5, conv6.
TAPS = 5


def _conv_bn(
    in_channels: int, out_channels: int, stride: int = 1, padding: int = 1, dilation: int = 1, kernel: int = 3
) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """A convolution without bias and its batch norm (separate keys `convN` / `bnN`, as DCFNet's)."""
    convolution = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation, bias=False)
    return convolution, nn.BatchNorm2d(out_channels)


class SmallStagedBackbone(nn.Module):
    """Keys `conv1..6`, `bn1..6`, `layer1` (see the module docstring); `forward(crop)` returns the maps
    `used_layers` names, in that order. `stage_channels` (stage 1, stage 2) and `out_channels` (the
    levels) are the widths DCFNet's template pieces and head take."""

    def __init__(self, used_layers: tuple[int, ...]):
        super().__init__()
        if not used_layers or not all(1 <= tap <= TAPS for tap in used_layers):
            raise ValueError(f"the small staged backbone's maps are numbered 1..{TAPS}, not {used_layers}")
        self.used_layers = list(used_layers)
        self.stage_channels = (STAGE1_CHANNELS, STAGE2_CHANNELS)
        self.out_channels = LEVEL_CHANNELS
        self.conv1, self.bn1 = _conv_bn(3, STAGE1_CHANNELS, stride=2, padding=0, kernel=7)
        self.conv2, self.bn2 = _conv_bn(STAGE1_CHANNELS, STAGE1_CHANNELS, stride=2)
        self.conv3, self.bn3 = _conv_bn(STAGE1_CHANNELS, STAGE1_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(
            *_conv_bn(STAGE1_CHANNELS, STAGE2_CHANNELS, stride=2, padding=0),
            nn.ReLU(inplace=True),
            *_conv_bn(STAGE2_CHANNELS, STAGE2_CHANNELS),
            nn.ReLU(inplace=True),
        )
        first, second, third = LEVEL_DILATIONS
        self.conv4, self.bn4 = _conv_bn(STAGE2_CHANNELS, LEVEL_CHANNELS, padding=first, dilation=first)
        self.conv5, self.bn5 = _conv_bn(LEVEL_CHANNELS, LEVEL_CHANNELS, padding=second, dilation=second)
        self.conv6, self.bn6 = _conv_bn(LEVEL_CHANNELS, LEVEL_CHANNELS, padding=third, dilation=third)

    def stage1(self, crop: Tensor) -> Tensor:
        """The first three conv layers: [B,STAGE1_CHANNELS,s1,s1]."""
        feature = self.relu(self.bn1(self.conv1(crop)))
        feature = self.relu(self.bn2(self.conv2(feature)))
        return self.relu(self.bn3(self.conv3(feature)))

    def stage2(self, feature: Tensor) -> Tensor:
        """Stage 2: [B,STAGE2_CHANNELS,s2,s2]."""
        return self.layer1(feature)

    def levels(self, feature: Tensor) -> list[Tensor]:
        """The outputs of conv4, conv5 and conv6 (no ReLU on the last): [B,LEVEL_CHANNELS,s2,s2] each."""
        fourth = self.relu(self.bn4(self.conv4(feature)))
        fifth = self.relu(self.bn5(self.conv5(fourth)))
        return [fourth, fifth, self.bn6(self.conv6(fifth))]

    def last_layers(self, feature: Tensor) -> Tensor:
        """The final map (conv6's output) of a stage-2 map."""
        return self.levels(feature)[2]

    def forward(self, crop: Tensor) -> list[Tensor]:
        first = self.stage1(crop)
        second = self.stage2(first)
        taps = [first, second]
        taps.extend(self.levels(second))  # not `*`-unpacking: TorchScript cannot compile it
        return [taps[tap - 1] for tap in self.used_layers]

    def output_side(self, input_side: int) -> int:
        """Side of the stride-8 maps (stage 2 onwards) for a square crop of `input_side` pixels."""
        return self.output_sides(input_side)[1]

    def output_sides(self, input_side: int) -> tuple[int, int]:
        """Sides of the stage-1 and stage-2 (= final) maps for a square crop of `input_side` pixels."""
        first = (input_side - 7) // 2 + 1  # conv1
        first = (first - 1) // 2 + 1  # conv2: 3x3, stride 2, padding 1
        return first, (first - 3) // 2 + 1  # the unpadded stride-2 3x3 of layer1


class SmallStagedCorrelationBackbone(FusedSearch, SmallStagedBackbone):
    """The small staged backbone with DCFNet's correlation-fusions after stage 1 (`fusion1`) and stage 2
    (`fusion2`), or after those of `fusion_stages` only. `fused(crop, templates)` is the search branch
    (`FusedSearch`); the template branch is the plain one."""

    def __init__(self, used_layers: tuple[int, ...], fusion_stages: tuple[int, ...] = FUSED_STAGES):
        super().__init__(used_layers)
        self.build_fusions(self.stage_channels, fusion_stages)
