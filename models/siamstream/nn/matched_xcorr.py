"""ACM's parameter-matched control: depth-wise cross-correlation with as many learnable weights as ACM.

ACM (CVPR 2021, `nn.acm`) replaces the parameter-free depth-wise cross-correlation (DW-XCorr) of
SiamRPN++ and SiamBAN by learned layers, so its gain over the DW-XCorr baseline may come from the way
the two maps meet or from the extra weights. This control (`HeadConfig.correlation` "xcorr_matched")
keeps DW-XCorr as the meeting of template and search and gives each branch ACM's learnable layers
around it:
- `conv_kernel` / `conv_search`: the 3x3 conv-BN-ReLU both have; the template kernel is [C,k,k];
- `xcorr_mix`: one padded m x m convolution (with bias) of the correlation map, in place of ACM's two
  k x k fusion convolutions (`xorr_kernel`, `xorr_search`: 2 k^2 C^2 weights); m is the odd side whose
  square is nearest 2 k^2 (7 for the 5x5 kernels of 7x7 template maps: 49 C^2 against 50 C^2);
- `xorr_activate` and `head`: ACM's (BN-ReLU-3x3 conv-BN-ReLU; 3x3 conv-BN-ReLU-3x3 conv).
What ACM has beyond these is its box-prior MLP (`xorr_bbox`, 1,280 + 32 C weights) and C^2 - C: about
3.6 % of a 32-wide branch, 1.3 % of a 256-wide one. The search path has ACM's depth: five convolutions
from the neck map to the output. Template embedding and outputs are those of the depth-wise heads
(`MultiDepthwiseBox`: the `conv_kernel` output of every level and branch), so the control also keeps
their feature-map template.
"""

from torch import Tensor, nn

from siamstream.config import TrackerConfig
from siamstream.nn.acm import fusion_activation, fusion_head
from siamstream.nn.backbones import Backbone
from siamstream.nn.correlation import xcorr_depthwise
from siamstream.nn.depthwise import BoxLevel, CorrelationBranch, MultiDepthwiseBox, _conv3x3_bn_relu
from siamstream.nn.neck import Neck
from siamstream.nn.network import KERNEL_BORDER, BANNetwork, RPNNetwork, backbone_and_neck, register_network


def mix_side(kernel_side: int) -> int:
    """The odd side m whose m^2 is nearest 2 * kernel_side^2 (the weights of ACM's two fusion convs)."""
    target = 2 * kernel_side * kernel_side
    return min(range(1, 2 * kernel_side + 2, 2), key=lambda side: abs(side * side - target))


class MatchedXCorr(CorrelationBranch):
    """One branch: template map [B,C,k+2,k+2] -> kernel [B,C,k,k]; search map [B,C,H,W] and kernel ->
    head output [B,out_channels,H-k-1,W-k-1] (25x25 for 31x31 search maps), as `DepthwiseXCorr`."""

    def __init__(self, channels: int, out_channels: int, kernel_side: int):
        super().__init__()
        side = mix_side(kernel_side)
        self.conv_kernel = _conv3x3_bn_relu(channels, channels)
        self.conv_search = _conv3x3_bn_relu(channels, channels)
        self.xcorr_mix = nn.Conv2d(channels, channels, side, padding=side // 2)
        self.xorr_activate = fusion_activation(channels)
        self.head = fusion_head(channels, out_channels)

    def template_kernel(self, template_feature: Tensor) -> Tensor:
        return self.conv_kernel(template_feature)

    def forward(self, kernel: Tensor, search_feature: Tensor) -> Tensor:
        response = xcorr_depthwise(self.conv_search(search_feature), kernel)
        return self.head(self.xorr_activate(self.xcorr_mix(response)))


class MatchedBoxLevel(BoxLevel):
    """One level of a box head with a `cls` and a `loc` `MatchedXCorr`; takes and returns the lists of
    `DepthwiseBoxLevel`."""

    def __init__(self, channels: int, cls_channels: int, loc_channels: int, kernel_side: int):
        super().__init__(
            MatchedXCorr(channels, cls_channels, kernel_side),
            MatchedXCorr(channels, loc_channels, kernel_side),
        )


@register_network("rpn", correlation="xcorr_matched")
def build_matched_rpn_network(config: TrackerConfig) -> RPNNetwork:
    """SiamRPN++ with matched levels."""
    head = config.head
    backbone, neck, kernel_side = _matched_trunk(config)
    anchors = head.anchor_num
    levels = [
        MatchedBoxLevel(head.in_channels, 2 * anchors, 4 * anchors, kernel_side) for _ in range(head.levels)
    ]
    return RPNNetwork(
        backbone,
        neck,
        MultiDepthwiseBox("rpn", levels, head.weighted),
        kernel_side,
        head.in_channels,
        head.levels,
    )


@register_network("ban", correlation="xcorr_matched")
def build_matched_ban_network(config: TrackerConfig) -> BANNetwork:
    """SiamBAN with matched levels."""
    head = config.head
    backbone, neck, kernel_side = _matched_trunk(config)
    levels = [MatchedBoxLevel(head.in_channels, 2, 4, kernel_side) for _ in range(head.levels)]
    return BANNetwork(
        backbone,
        neck,
        MultiDepthwiseBox("box", levels, head.weighted),
        kernel_side,
        head.in_channels,
        head.levels,
    )


def _matched_trunk(config: TrackerConfig) -> tuple[Backbone, Neck, int]:
    """Backbone, neck and side of the template kernels (5 after the ResNet-50 neck) of a matched head."""
    backbone, neck, template_side = backbone_and_neck(config)
    if neck is None or config.head.levels == 1:
        raise ValueError(f"{config.name}: the matched control, like ACM, needs a neck and several levels")
    return backbone, neck, template_side - KERNEL_BORDER
