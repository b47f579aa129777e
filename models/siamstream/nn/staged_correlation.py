"""DCFNet's feature extractor: a trimmed ResNet-50 with staged depth-wise correlation and feature fusion.

"Staged Depthwise Correlation and Feature Fusion for Siamese Object Tracking" (DCFNet): the search branch
is correlated, depth-wise, with the template branch's map of the same stage at two points inside the
backbone, and each response is added back to the search map (the correlation-fusion module). Only the
search branch is fused; the template branch is a plain backbone, so every template map the fusions need
is computed once per target.

Layout (the paper's "first three conv layers, blocks 2 and 3 of ResNet-50, last three conv layers"), sides
for the 127 / 255 crops:
- `conv1` 7x7 stride 2 unpadded (ResNet-50's first layer), `conv2` 3x3 stride 2 padded (in place of
  ResNet's max pool, keeping the total stride 8 that the SiamCAR geometry assumes), `conv3` 3x3 padded:
  64 channels, 31 / 63. Correlation-fusion 1 (`fusion1`).
- `layer1`, `layer2`: ResNet-50's conv2_x and conv3_x with pysot's unpadded stride-2 conv: 512 channels,
  15 / 31. Correlation-fusion 2 (`fusion2`).
- `conv4..conv6`: 3x3 padded convolutions to 256 channels (BN + ReLU, the last without ReLU): 15 / 31.
The paper's ablation (Table III) keeps both fusions ("CF-double"), one ("CF-1st", "CF-2nd") or none
("Baseline"): `fusion_stages` names the stages that have one; the others have no `fusionN` module.
Crops are BGR [B,3,S,S], 0..255.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from siamstream.nn.correlation import xcorr_depthwise
from siamstream.nn.resnet_atrous import BLOCKS_PER_LAYER, make_layer

STEM_CHANNELS = 64
BLOCK3_CHANNELS = 512
OUT_CHANNELS = 256
# The backbone stages that can be followed by a correlation-fusion: 1 after the first three conv layers,
# 2 after block 3; fusing after both is the paper's final "CF-double" model.
FUSED_STAGES = (1, 2)


class CorrelationFusion(nn.Module):
    """Depth-wise correlation of a search map with the template map of the same stage, fused back.

    `search` [B,C,H,W], `template` [B,C,h,w] with h <= H, w <= W, row b with row b. The response
    [B,C,H-h+1,W-w+1] goes through a batch norm (`bn`, a learned per-channel scale and shift: a raw
    correlation sums h*w products and would swamp the search features), is placed where it belongs on
    the search map and added to `search`: response cell (i, j) compares the template with the search
    window whose top-left cell is (i, j), so it lands on that window's centre cell
    (i + (h-1)//2, j + (w-1)//2). The cells no whole window is centred on (a border (h-1)//2 deep at the
    top, h//2 at the bottom, likewise left and right) get nothing added.

    Paper 001 resizes the response to HxW ("upsample and crop", "trilinear interpolation"). The response
    already has the search map's cell spacing (a stride-1 correlation), so stretching it H/(H-h+1) times
    (1.9x at stage 1: 33 -> 63) would move a match d cells off centre to about 1.9d cells off centre: the
    fusion would highlight the target only when it sits at the centre. Placing it keeps every position.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, search: Tensor, template: Tensor) -> Tensor:
        response = self.bn(xcorr_depthwise(search, template))
        rows, cols = template.size(2) - 1, template.size(3) - 1
        placed = F.pad(response, [cols // 2, cols - cols // 2, rows // 2, rows - rows // 2])
        return search + placed


class FusedSearch:
    """The search branch of a staged backbone (listed before `nn.Module` in its bases), with the
    correlation-fusions `fusion1` / `fusion2` it was built with (None: that stage is not fused).

    The backbone provides `stage1`, `stage2` and `last_layers`. No class annotations: TorchScript would
    read them as the attributes' types, and an unfused stage's None is typed by its value."""

    def build_fusions(self, stage_channels: tuple[int, int], fusion_stages: tuple[int, ...]) -> None:
        """Sets `fusion_stages` and a `CorrelationFusion` (or None) as `fusion1` and `fusion2`, for the
        stage-1 and stage-2 maps of `stage_channels` channels."""
        if not set(fusion_stages) <= set(FUSED_STAGES):
            raise ValueError(f"correlation-fusions follow the stages {FUSED_STAGES}, not {fusion_stages}")
        self.fusion_stages = tuple(fusion_stages)
        self.fusion1 = CorrelationFusion(stage_channels[0]) if 1 in fusion_stages else None
        self.fusion2 = CorrelationFusion(stage_channels[1]) if 2 in fusion_stages else None

    def fused(self, crop: Tensor, templates: list[Tensor]) -> Tensor:
        """Final search map [B,C,s2,s2] of `crop`, fused with `templates` = the template's maps of the
        fused stages, in stage order (row b with row b)."""
        feature = self.stage1(crop)  # type: ignore[attr-defined]
        if self.fusion1 is not None:
            feature = self.fusion1(feature, templates[0])
        feature = self.stage2(feature)  # type: ignore[attr-defined]
        if self.fusion2 is not None:
            feature = self.fusion2(feature, templates[-1])
        return self.last_layers(feature)  # type: ignore[attr-defined]


def _conv_bn(
    in_channels: int, out_channels: int, kernel: int, stride: int, padding: int
) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """A convolution without bias and its batch norm (separate keys `convN` / `bnN`, ResNet style)."""
    convolution = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False)
    return convolution, nn.BatchNorm2d(out_channels)


class StagedCorrelationBackbone(FusedSearch, nn.Module):
    """Keys `conv1..6`, `bn1..6`, `layer1`, `layer2` and `fusionN` for each of `fusion_stages` (see the
    module docstring).

    `forward(crop)` is the plain (template) branch: its stage-1, stage-2 and final maps.
    `fused(crop, templates)` is the search branch: the same layers with the correlation-fusions against
    the template's maps of the fused stages; it returns the final search map.
    `stage_channels` (stage 1, stage 2) and `out_channels` are the widths of those maps.
    """

    def __init__(self, fusion_stages: tuple[int, ...] = FUSED_STAGES) -> None:
        super().__init__()
        self.stage_channels = (STEM_CHANNELS, BLOCK3_CHANNELS)
        self.out_channels = OUT_CHANNELS
        self.conv1, self.bn1 = _conv_bn(3, STEM_CHANNELS, 7, stride=2, padding=0)
        self.conv2, self.bn2 = _conv_bn(STEM_CHANNELS, STEM_CHANNELS, 3, stride=2, padding=1)
        self.conv3, self.bn3 = _conv_bn(STEM_CHANNELS, STEM_CHANNELS, 3, stride=1, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(STEM_CHANNELS, 64, BLOCKS_PER_LAYER[0], stride=1, dilation=1)
        self.layer2 = make_layer(256, 128, BLOCKS_PER_LAYER[1], stride=2, dilation=1)
        self.conv4, self.bn4 = _conv_bn(BLOCK3_CHANNELS, OUT_CHANNELS, 3, stride=1, padding=1)
        self.conv5, self.bn5 = _conv_bn(OUT_CHANNELS, OUT_CHANNELS, 3, stride=1, padding=1)
        self.conv6, self.bn6 = _conv_bn(OUT_CHANNELS, OUT_CHANNELS, 3, stride=1, padding=1)
        self.build_fusions(self.stage_channels, fusion_stages)

    def stage1(self, crop: Tensor) -> Tensor:
        """The first three conv layers: [B,64,s1,s1]."""
        feature = self.relu(self.bn1(self.conv1(crop)))
        feature = self.relu(self.bn2(self.conv2(feature)))
        return self.relu(self.bn3(self.conv3(feature)))

    def stage2(self, feature: Tensor) -> Tensor:
        """ResNet-50 blocks 2 and 3: [B,512,s2,s2]."""
        return self.layer2(self.layer1(feature))

    def last_layers(self, feature: Tensor) -> Tensor:
        """The last three conv layers: [B,256,s2,s2]."""
        feature = self.relu(self.bn4(self.conv4(feature)))
        feature = self.relu(self.bn5(self.conv5(feature)))
        return self.bn6(self.conv6(feature))

    def forward(self, crop: Tensor) -> list[Tensor]:
        first = self.stage1(crop)
        second = self.stage2(first)
        return [first, second, self.last_layers(second)]

    def output_side(self, input_side: int) -> int:
        """Side of the final map for a square crop of `input_side` pixels."""
        return self.output_sides(input_side)[1]

    def output_sides(self, input_side: int) -> tuple[int, int]:
        """Sides of the stage-1 and stage-2 (= final) maps for a square crop of `input_side` pixels."""
        first = (input_side - 7) // 2 + 1  # conv1
        first = (first - 1) // 2 + 1  # conv2: 3x3, stride 2, padding 1
        return first, (first - 3) // 2 + 1  # the unpadded stride-2 3x3 of layer2
