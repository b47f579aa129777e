"""Networks of every registered tracker: reference state-dict layout, Contract 1 stages, batching, precision.

The expected layouts below are written down from the
reference sources (pysot, siamban, SiamCAR, siamfc-pytorch), not derived from `siamstream.nn`.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import Tensor, nn

from siamstream.config import Precision, TrackerConfig
from siamstream.nn.correlation import xcorr_depthwise, xcorr_full
from siamstream.nn.neck import AdjustLayer
from siamstream.nn.network import SiameseNetwork, build_network
from siamstream.nn.small_staged import SmallStagedBackbone
from siamstream.nn.stages import SearchStage, TemplateStage, script_stages
from siamstream.registry import get_config, list_trackers

Shape = tuple[int, ...]
Layout = dict[str, Shape]

# Batching and precision tests use a smaller search crop than the trackers (the batch logic does not depend
# on its size) to keep the ResNet-50 models fast. 175 still gives ResNet/MobileNet search maps of 21 >= 20,
# so the neck does not mistake them for template maps.
SMALL_SEARCH_SIDE = 175
BATCH = 3
# Reduced precision is emulated, 40-100x slower than fp32, on CPUs without native bf16: only the AlexNet
# and small-backbone trackers are affordable there.
NATIVE_BF16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
CHEAP_BACKBONES = ("alexnet_legacy", "alexnet_siamfc", "small_staged", "small_staged_fused")

# TorchScript is deprecated in torch 2.13 but is what the stages are exported as (Contract 1, Triton).
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

# --- hand-written reference layouts -------------------------------------------------------------------


def conv(prefix: str, out_channels: int, in_channels: int, kernel: int, bias: bool = False) -> Layout:
    layout: Layout = {f"{prefix}.weight": (out_channels, in_channels, kernel, kernel)}
    if bias:
        layout[f"{prefix}.bias"] = (out_channels,)
    return layout


def batch_norm(prefix: str, channels: int) -> Layout:
    return {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}


def resnet50_atrous_layout() -> Layout:
    layout = {**conv("backbone.conv1", 64, 3, 7), **batch_norm("backbone.bn1", 64)}
    # (layer, blocks, planes, input channels, downsample kernel): 3x3 downsample convs in layer2..4.
    for layer, blocks, planes, in_channels, downsample_kernel in (
        (1, 3, 64, 64, 1),
        (2, 4, 128, 256, 3),
        (3, 6, 256, 512, 3),
        (4, 3, 512, 1024, 3),
    ):
        for block in range(blocks):
            prefix = f"backbone.layer{layer}.{block}"
            block_in = in_channels if block == 0 else 4 * planes
            layout |= conv(f"{prefix}.conv1", planes, block_in, 1) | batch_norm(f"{prefix}.bn1", planes)
            layout |= conv(f"{prefix}.conv2", planes, planes, 3) | batch_norm(f"{prefix}.bn2", planes)
            layout |= conv(f"{prefix}.conv3", 4 * planes, planes, 1) | batch_norm(f"{prefix}.bn3", 4 * planes)
            if block == 0:
                layout |= conv(f"{prefix}.downsample.0", 4 * planes, in_channels, downsample_kernel)
                layout |= batch_norm(f"{prefix}.downsample.1", 4 * planes)
    return layout


def mobilenetv2_layout() -> Layout:
    layout = {**conv("backbone.layer0.0", 44, 3, 3), **batch_norm("backbone.layer0.1", 44)}
    # (layer, input channels, output channels, expansion, blocks) of pysot's width-1.4 MobileNetV2.
    for layer, in_channels, out_channels, expansion, blocks in (
        (1, 44, 22, 1, 1),
        (2, 22, 33, 6, 2),
        (3, 33, 44, 6, 3),
        (4, 44, 89, 6, 4),
        (5, 89, 134, 6, 3),
        (6, 134, 224, 6, 3),
        (7, 224, 448, 6, 1),
    ):
        for block in range(blocks):
            prefix = f"backbone.layer{layer}.{block}.conv"
            block_in = in_channels if block == 0 else out_channels
            hidden = block_in * expansion
            layout |= conv(f"{prefix}.0", hidden, block_in, 1) | batch_norm(f"{prefix}.1", hidden)
            layout |= conv(f"{prefix}.3", hidden, 1, 3) | batch_norm(f"{prefix}.4", hidden)
            layout |= conv(f"{prefix}.6", out_channels, hidden, 1) | batch_norm(f"{prefix}.7", out_channels)
    return layout


def alexnet_legacy_layout() -> Layout:
    layout: Layout = {}
    for conv_index, out_channels, in_channels, kernel in (
        (0, 96, 3, 11),
        (4, 256, 96, 5),
        (8, 384, 256, 3),
        (11, 384, 384, 3),
        (14, 256, 384, 3),
    ):
        layout |= conv(f"backbone.features.{conv_index}", out_channels, in_channels, kernel, bias=True)
        layout |= batch_norm(f"backbone.features.{conv_index + 1}", out_channels)
    return layout


def alexnet_siamfc_layout() -> Layout:
    # conv2, conv4 and conv5 are grouped in two: half the input channels per filter; conv5 has no BN.
    layout = conv("backbone.conv1.0", 96, 3, 11, bias=True) | batch_norm("backbone.conv1.1", 96)
    layout |= conv("backbone.conv2.0", 256, 48, 5, bias=True) | batch_norm("backbone.conv2.1", 256)
    layout |= conv("backbone.conv3.0", 384, 256, 3, bias=True) | batch_norm("backbone.conv3.1", 384)
    layout |= conv("backbone.conv4.0", 384, 192, 3, bias=True) | batch_norm("backbone.conv4.1", 384)
    return layout | conv("backbone.conv5.0", 256, 192, 3, bias=True)


def dcfnet_resnet50_layout() -> Layout:
    # DCFNet (this library's layout; the paper publishes no weights): ResNet-50's conv1 and blocks 2-3
    # (`layer1`, `layer2` as in pysot), two more 3x3 convs after conv1, three 3x3 convs to 256 channels,
    # and the batch norm of each correlation-fusion.
    layout = conv("backbone.conv1", 64, 3, 7) | batch_norm("backbone.bn1", 64)
    layout |= conv("backbone.conv2", 64, 64, 3) | batch_norm("backbone.bn2", 64)
    layout |= conv("backbone.conv3", 64, 64, 3) | batch_norm("backbone.bn3", 64)
    blocks_2_3 = ("backbone.layer1.", "backbone.layer2.")
    layout |= {key: shape for key, shape in resnet50_atrous_layout().items() if key.startswith(blocks_2_3)}
    for index, in_channels in ((4, 512), (5, 256), (6, 256)):
        layout |= conv(f"backbone.conv{index}", 256, in_channels, 3) | batch_norm(f"backbone.bn{index}", 256)
    return layout | batch_norm("backbone.fusion1.bn", 64) | batch_norm("backbone.fusion2.bn", 512)


def small_staged_layout() -> Layout:
    # The small backbone of the from-scratch study (this library's layout, trained here): DCFNet's three
    # stage-1 convs at 16 channels, stage 2 (`layer1`) a strided and a plain 3x3 conv-BN-ReLU at 32, and
    # three 3x3 convs at 32 (the levels); every conv without bias, followed by its batch norm.
    layout = conv("backbone.conv1", 16, 3, 7) | batch_norm("backbone.bn1", 16)
    layout |= conv("backbone.conv2", 16, 16, 3) | batch_norm("backbone.bn2", 16)
    layout |= conv("backbone.conv3", 16, 16, 3) | batch_norm("backbone.bn3", 16)
    layout |= conv("backbone.layer1.0", 32, 16, 3) | batch_norm("backbone.layer1.1", 32)
    layout |= conv("backbone.layer1.3", 32, 32, 3) | batch_norm("backbone.layer1.4", 32)
    for index in (4, 5, 6):
        layout |= conv(f"backbone.conv{index}", 32, 32, 3) | batch_norm(f"backbone.bn{index}", 32)
    return layout


def small_staged_fused_layout() -> Layout:
    # The same with DCFNet's correlation-fusions after stage 1 (16 channels) and stage 2 (32).
    fusions = batch_norm("backbone.fusion1.bn", 16) | batch_norm("backbone.fusion2.bn", 32)
    return small_staged_layout() | fusions


BACKBONE_LAYOUTS = {
    "dcfnet_resnet50": dcfnet_resnet50_layout,
    "small_staged": small_staged_layout,
    "small_staged_fused": small_staged_fused_layout,
    "resnet50_atrous": resnet50_atrous_layout,
    "mobilenetv2": mobilenetv2_layout,
    "alexnet_legacy": alexnet_legacy_layout,
    "alexnet_siamfc": alexnet_siamfc_layout,
}
# Channels of the used backbone outputs, which the neck adjusts.
BACKBONE_OUTPUT_CHANNELS = {
    "resnet50_atrous": (512, 1024, 2048),
    "mobilenetv2": (44, 134, 448),
    "small_staged": (32, 32, 32),
}
# Width of the neck and heads: the references' 256, narrowed to 32 on the small backbone.
HEAD_CHANNELS = {"small_staged": 32, "small_staged_fused": 32}


def neck_layout(in_channels: tuple[int, ...], out_channels: int = 256) -> Layout:
    levels = len(in_channels)
    names = ["downsample"] if levels == 1 else [f"downsample{level}" for level in range(2, 2 + levels)]
    layout: Layout = {}
    for name, channels in zip(names, in_channels, strict=True):
        layout |= conv(f"neck.{name}.downsample.0", out_channels, channels, 1) | batch_norm(
            f"neck.{name}.downsample.1", out_channels
        )
    return layout


def depthwise_xcorr_layout(prefix: str, out_channels: int, channels: int) -> Layout:
    c = channels
    layout: Layout = {}
    for side in ("conv_kernel", "conv_search"):
        layout |= conv(f"{prefix}.{side}.0", c, c, 3) | batch_norm(f"{prefix}.{side}.1", c)
    layout |= conv(f"{prefix}.head.0", c, c, 1) | batch_norm(f"{prefix}.head.1", c)
    return layout | conv(f"{prefix}.head.3", out_channels, c, 1, bias=True)


def box_head_layout(
    head: str, level_name: str, config: TrackerConfig, cls_out: int, loc_out: int, channels: int
) -> Layout:
    levels = config.head.levels
    prefixes = [head] if levels == 1 else [f"{head}.{level_name}{i + 2}" for i in range(levels)]
    layout: Layout = {}
    for prefix in prefixes:
        layout |= depthwise_xcorr_layout(f"{prefix}.cls", cls_out, channels)
        layout |= depthwise_xcorr_layout(f"{prefix}.loc", loc_out, channels)
    if config.head.weighted:
        layout |= {f"{head}.cls_weight": (levels,), f"{head}.loc_weight": (levels,)}
    return layout


def car_head_layout(channels: int) -> Layout:
    layout: Layout = {}
    for tower in ("cls_tower", "bbox_tower"):
        for index in (0, 3, 6, 9):
            layout |= conv(f"car_head.{tower}.{index}", channels, channels, 3, bias=True)
            layout |= {
                f"car_head.{tower}.{index + 1}.weight": (channels,),
                f"car_head.{tower}.{index + 1}.bias": (channels,),
            }
    for name, out_channels in (("cls_logits", 2), ("bbox_pred", 4), ("centerness", 1)):
        layout |= conv(f"car_head.{name}", out_channels, channels, 3, bias=True)
    # ConvTranspose2d(3C, C, 1) (768 -> 256 in SiamCAR) stores its weight as [in, out, 1, 1].
    return layout | {"down.weight": (3 * channels, channels, 1, 1), "down.bias": (channels,)}


def dcf_head_layout(channels: int) -> Layout:
    # SiamCAR's towers, cls_logits and bbox_pred; no centerness branch, and one level so no `down`.
    return {
        key: shape
        for key, shape in car_head_layout(channels).items()
        if not key.startswith(("car_head.centerness", "down."))
    }


def can_head_layout(config: TrackerConfig, channels: int) -> Layout:
    # SiamBAN's depth-wise blocks per level, the 1-D channel-attention conv (k = 5) per level, a 7x7
    # spatial-attention conv per branch, one set of level weights (alpha) and SiamBAN's loc scales.
    levels = config.head.levels
    layout: Layout = {}
    for level in range(2, 2 + levels):
        prefix = f"head.box{level}"
        layout[f"{prefix}.channel_attention.conv.weight"] = (1, 1, 5)
        for branch, out_channels in (("cls", 2), ("loc", 4)):
            layout |= depthwise_xcorr_layout(f"{prefix}.{branch}", out_channels, channels)
            layout[f"{prefix}.{branch}.spatial_attention.conv.weight"] = (1, 2, 7, 7)
    return layout | {"head.level_weight": (levels,), "head.loc_scale": (levels,)}


def acm_branch_layout(
    prefix: str, out_channels: int, kernel_side: int = 5, adjust: bool = True, channels: int = 256
) -> Layout:
    """One ACM branch as SiamBAN-ACM's `DepthwiseXCorr` stores it (`conv_kernel` / `conv_search` only
    when the branch adjusts its inputs: SiamFC-ACM works on the backbone maps as they are). The box-size
    prior's hidden layers are 32 wide whatever the branch's `channels`."""
    c = channels
    layout: Layout = {}
    if adjust:
        for side in ("conv_kernel", "conv_search"):
            layout |= conv(f"{prefix}.{side}.0", c, c, 3) | batch_norm(f"{prefix}.{side}.1", c)
    layout |= conv(f"{prefix}.xorr_kernel", c, c, kernel_side, bias=True)
    layout |= conv(f"{prefix}.xorr_search", c, c, kernel_side)
    layout |= {f"{prefix}.xorr_bbox.0.weight": (32, 2), f"{prefix}.xorr_bbox.0.bias": (32,)}
    layout |= batch_norm(f"{prefix}.xorr_bbox.1", 32)
    layout |= {f"{prefix}.xorr_bbox.3.weight": (32, 32), f"{prefix}.xorr_bbox.3.bias": (32,)}
    layout |= batch_norm(f"{prefix}.xorr_bbox.4", 32) | {f"{prefix}.xorr_bbox.6.weight": (c, 32)}
    layout |= batch_norm(f"{prefix}.xorr_activate.0", c)
    layout |= conv(f"{prefix}.xorr_activate.2", c, c, 3, bias=True)
    layout |= batch_norm(f"{prefix}.xorr_activate.3", c)
    layout |= conv(f"{prefix}.head.0", c, c, 3, bias=True) | batch_norm(f"{prefix}.head.1", c)
    return layout | conv(f"{prefix}.head.3", out_channels, c, 3, bias=True)


def acm_head_layout(config: TrackerConfig, channels: int) -> Layout:
    # SiamFC-ACM: one branch on the 6x6 AlexNet map. SiamRPN++-ACM / SiamBAN-ACM: the depth-wise heads'
    # levels and fusion weights with ACM branches (SiamBAN-ACM's released layout).
    if config.head.kind == "siamfc":
        return acm_branch_layout("head", 1, kernel_side=6, adjust=False, channels=channels)
    head, level_name = ("rpn_head", "rpn") if config.head.kind == "rpn" else ("head", "box")
    anchors = config.head.anchor_num
    cls_out, loc_out = (2 * anchors, 4 * anchors) if head == "rpn_head" else (2, 4)
    levels = config.head.levels
    layout: Layout = {}
    for level in range(2, 2 + levels):
        layout |= acm_branch_layout(f"{head}.{level_name}{level}.cls", cls_out, channels=channels)
        layout |= acm_branch_layout(f"{head}.{level_name}{level}.loc", loc_out, channels=channels)
    if config.head.weighted:
        layout |= {f"{head}.cls_weight": (levels,), f"{head}.loc_weight": (levels,)}
    return layout | ({"head.loc_scale": (levels,)} if head == "head" else {})


def head_layout(config: TrackerConfig, channels: int) -> Layout:
    anchors = config.head.anchor_num
    if config.head.correlation == "acm":
        return acm_head_layout(config, channels)
    if config.head.kind == "rpn":
        return box_head_layout("rpn_head", "rpn", config, 2 * anchors, 4 * anchors, channels)
    if config.head.kind == "ban":
        layout = box_head_layout("head", "box", config, 2, 4, channels)
        return layout | {"head.loc_scale": (config.head.levels,)}
    if config.head.kind == "car":
        return car_head_layout(channels)
    if config.head.kind == "siamfc":
        return {}  # siamfc-pytorch's head has no parameters
    if config.head.kind == "dcf":
        return dcf_head_layout(channels)
    if config.head.kind == "can":
        return can_head_layout(config, channels)
    pytest.fail(f"no reference layout for head kind {config.head.kind!r}: add one to this table")


def reference_layout(config: TrackerConfig) -> Layout:
    if config.backbone.kind not in BACKBONE_LAYOUTS:
        pytest.fail(f"no reference layout for backbone {config.backbone.kind!r}: add one to this table")
    layout = BACKBONE_LAYOUTS[config.backbone.kind]()
    channels = HEAD_CHANNELS.get(config.backbone.kind, 256)
    if config.neck is not None:
        assert config.neck.in_channels == BACKBONE_OUTPUT_CHANNELS[config.backbone.kind]
        layout |= neck_layout(config.neck.in_channels, channels)
    return layout | head_layout(config, channels)


# Literal entries of the facts file and the reference checkpoints, per registered tracker.
REFERENCE_ANCHORS: dict[str, Layout] = {
    "siamrpnpp_r50": {
        "backbone.conv1.weight": (64, 3, 7, 7),
        "backbone.layer2.0.downsample.0.weight": (512, 256, 3, 3),
        "backbone.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "neck.downsample2.downsample.0.weight": (256, 512, 1, 1),
        "neck.downsample4.downsample.0.weight": (256, 2048, 1, 1),
        "rpn_head.rpn2.cls.head.3.weight": (10, 256, 1, 1),
        "rpn_head.rpn4.loc.head.3.bias": (20,),
        "rpn_head.cls_weight": (3,),
        "rpn_head.loc_weight": (3,),
    },
    "siamrpnpp_mobilenetv2": {
        "backbone.layer7.0.conv.6.weight": (448, 1344, 1, 1),
        "neck.downsample3.downsample.0.weight": (256, 134, 1, 1),
    },
    "siamrpn_alex": {
        "backbone.features.0.weight": (96, 3, 11, 11),
        "backbone.features.15.running_var": (256,),
        "rpn_head.cls.conv_kernel.0.weight": (256, 256, 3, 3),
        "rpn_head.loc.head.3.weight": (20, 256, 1, 1),
    },
    "siamban_r50": {"head.box3.cls.head.3.weight": (2, 256, 1, 1), "head.loc_scale": (3,)},
    "siamcar_r50": {"down.weight": (768, 256, 1, 1), "car_head.cls_logits.weight": (2, 256, 3, 3)},
    "siamfc_alexnet": {"backbone.conv1.0.weight": (96, 3, 11, 11), "backbone.conv5.0.bias": (256,)},
    "dcfnet_r50": {
        "backbone.conv1.weight": (64, 3, 7, 7),
        "backbone.layer2.0.downsample.0.weight": (512, 256, 3, 3),
        "backbone.conv4.weight": (256, 512, 3, 3),
        "backbone.fusion2.bn.weight": (512,),
        "car_head.bbox_pred.weight": (4, 256, 3, 3),
    },
    "dcfnet_small": {
        "backbone.conv1.weight": (16, 3, 7, 7),
        "backbone.layer1.0.weight": (32, 16, 3, 3),
        "backbone.conv6.weight": (32, 32, 3, 3),
        "backbone.fusion1.bn.weight": (16,),
        "backbone.fusion2.bn.weight": (32,),
        "car_head.bbox_pred.weight": (4, 32, 3, 3),
    },
    "siamrpnpp_small": {
        "backbone.conv4.weight": (32, 32, 3, 3),
        "neck.downsample4.downsample.0.weight": (32, 32, 1, 1),
        "rpn_head.rpn2.cls.head.3.weight": (10, 32, 1, 1),
        "rpn_head.cls_weight": (3,),
    },
    "siamban_acm_r50": {
        "head.box2.cls.xorr_kernel.weight": (256, 256, 5, 5),
        "head.box2.cls.xorr_kernel.bias": (256,),
        "head.box3.loc.xorr_search.weight": (256, 256, 5, 5),
        "head.box4.cls.xorr_bbox.0.weight": (32, 2),
        "head.box4.cls.xorr_bbox.6.weight": (256, 32),
        "head.box2.loc.xorr_activate.2.weight": (256, 256, 3, 3),
        "head.box3.loc.head.3.weight": (4, 256, 3, 3),
        "head.loc_scale": (3,),
    },
    "siamcan_r50": {
        "head.box2.channel_attention.conv.weight": (1, 1, 5),
        "head.box4.loc.spatial_attention.conv.weight": (1, 2, 7, 7),
        "head.box3.cls.head.3.weight": (2, 256, 1, 1),
        "head.level_weight": (3,),
    },
}
# Template embedding lengths: [cls, loc] 5x5 kernels of 256 channels per level (RPN, BAN; 4x4 for AlexNet),
# the three 7x7 neck maps (CAR), the 6x6 backbone map (SiamFC).
EMBEDDING_DIMS = {
    "siamrpnpp_r50": 3 * 2 * 256 * 5 * 5,
    "siamrpnpp_r50_otb": 3 * 2 * 256 * 5 * 5,
    "siamrpnpp_mobilenetv2": 3 * 2 * 256 * 5 * 5,
    "siamban_r50": 3 * 2 * 256 * 5 * 5,
    "siamrpn_alex": 2 * 256 * 4 * 4,
    "siamcar_r50": 3 * 256 * 7 * 7,
    "siamfc_alexnet": 256 * 6 * 6,
    # DCFNet: the template's stage-1 (64x31x31) and stage-2 (512x15x15) maps, the 7x7 kernel of its final map.
    "dcfnet_r50": 64 * 31 * 31 + 512 * 15 * 15 + 256 * 7 * 7,
    # SiamCAN: per level the [cls, loc] 5x5 kernels and the 256 channel-attention weights.
    "siamcan_r50": 3 * (2 * 256 * 5 * 5 + 256),
    # ACM: one 256-vector per level and branch (template term plus box-size term); one for SiamFC-ACM.
    "siamban_acm_r50": 3 * 2 * 256,
    "siamrpnpp_acm_r50": 3 * 2 * 256,
    "siamfc_acm_alexnet": 256,
    "siammargin_r50": 3 * 2 * 256 * 5 * 5,
    # The small backbone's trackers: the same pieces 32 channels wide; DCFNet's stage maps are 16x31x31
    # and 32x15x15.
    "siamrpnpp_small": 3 * 2 * 32 * 5 * 5,
    "siammargin_small": 3 * 2 * 32 * 5 * 5,
    "siamban_small": 3 * 2 * 32 * 5 * 5,
    "siamcar_small": 3 * 32 * 7 * 7,
    "siamcan_small": 3 * (2 * 32 * 5 * 5 + 32),
    "siamrpnpp_acm_small": 3 * 2 * 32,
    "siamban_acm_small": 3 * 2 * 32,
    "dcfnet_small": 16 * 31 * 31 + 32 * 15 * 15 + 32 * 7 * 7,
}

# --- fixtures --------------------------------------------------------------------------------------------


class Tracker(NamedTuple):
    config: TrackerConfig
    network: SiameseNetwork


class StreamsRun(NamedTuple):
    """Fp32 eager stage results for `BATCH` different streams, from float crops holding integer values:
    all rows in one call (`batch_*`) and each row in its own call (`single_*`)."""

    crop_z: Tensor  # uint8 [BATCH,3,Z,Z]
    box_prior: Tensor  # float32 [BATCH,2]
    crop_x: Tensor  # uint8 [BATCH,3,X,X], X = SMALL_SEARCH_SIDE
    batch_embedding: Tensor
    batch_outputs: tuple[Tensor, ...]
    single_embeddings: list[Tensor]
    single_outputs: list[tuple[Tensor, ...]]


def randomise_normalisation(network: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial normalisation statistics and affine terms, and non-uniform level weights."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None  # tracked stats
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
            if isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
        for name, parameter in network.named_parameters():
            if name.endswith(("cls_weight", "loc_weight", "level_weight")):
                parameter.uniform_(0.5, 1.5, generator=generator)
            if name.endswith("loc_scale"):  # small enough that exp(loc * loc_scale) stays well scaled
                parameter.uniform_(0.01, 0.03, generator=generator)


def crops(generator: torch.Generator, batch: int, side: int) -> Tensor:
    return torch.randint(0, 256, (batch, 3, side, side), generator=generator, dtype=torch.uint8)


def box_priors(generator: torch.Generator, batch: int) -> Tensor:
    return torch.rand(batch, 2, generator=generator) * 60 + 20


def assert_close_relative(actual: Tensor, expected: Tensor, tolerance: float) -> None:
    """Every element within `tolerance` times the largest magnitude of `expected`."""
    assert actual.shape == expected.shape
    scale = float(expected.abs().max())
    torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance * scale)


@pytest.fixture(scope="module", params=list_trackers())
def tracker(request: pytest.FixtureRequest) -> Tracker:
    config = get_config(request.param)
    torch.manual_seed(0)
    network = build_network(config)
    randomise_normalisation(network, torch.Generator().manual_seed(1))
    return Tracker(config, network)


@pytest.fixture(scope="module")
def streams_run(tracker: Tracker) -> StreamsRun:
    generator = torch.Generator().manual_seed(2)
    crop_z = crops(generator, BATCH, tracker.config.crop.exemplar_size).float()
    crop_x = crops(generator, BATCH, SMALL_SEARCH_SIDE).float()
    box_prior = box_priors(generator, BATCH)
    template, search = TemplateStage(tracker.network), SearchStage(tracker.network)
    with torch.inference_mode():
        batch_embedding = template(crop_z, box_prior)
        batch_outputs = search(batch_embedding, crop_x)
        single_embeddings = [
            template(crop_z[row : row + 1], box_prior[row : row + 1]) for row in range(BATCH)
        ]
        single_outputs = [search(single_embeddings[row], crop_x[row : row + 1]) for row in range(BATCH)]
    return StreamsRun(
        crop_z.to(torch.uint8),
        box_prior,
        crop_x.to(torch.uint8),
        batch_embedding,
        batch_outputs,
        single_embeddings,
        single_outputs,
    )


# --- tests -----------------------------------------------------------------------------------------------


def test_state_dict_has_the_reference_layout(tracker: Tracker) -> None:
    state = {
        key: tuple(value.shape)
        for key, value in tracker.network.state_dict().items()
        if not key.endswith("num_batches_tracked")  # optional in the reference checkpoints
    }
    expected = reference_layout(tracker.config)
    assert sorted(set(state) - set(expected)) == []
    assert sorted(set(expected) - set(state)) == []
    assert {key: shape for key, shape in state.items() if shape != expected[key]} == {}
    for key, shape in REFERENCE_ANCHORS.get(tracker.config.name, {}).items():
        assert state[key] == shape, key


def test_stages_return_contract_shapes_at_the_tracker_crop_sizes(tracker: Tracker) -> None:
    config, network = tracker
    generator = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        embedding = TemplateStage(network)(
            crops(generator, 1, config.crop.exemplar_size), box_priors(generator, 1)
        )
        outputs = SearchStage(network)(embedding, crops(generator, 1, config.crop.instance_size))
    assert embedding.dtype == torch.float32
    assert embedding.shape == (1, network.embedding_dim)
    if config.name in EMBEDDING_DIMS:
        assert network.embedding_dim == EMBEDDING_DIMS[config.name]
    score = config.crop.score_size
    anchors = config.head.anchor_num
    expected_channels = {
        "siamrpn": {"cls": 2 * anchors, "loc": 4 * anchors},
        "siamban": {"cls": 2, "loc": 4},
        "siamcar": {"cls": 2, "loc": 4, "cen": 1},
        "siamfc": {"response": 1},
    }[config.family]
    assert network.search_output_names == tuple(expected_channels)
    assert [tuple(output.shape) for output in outputs] == [
        (1, c, score, score) for c in expected_channels.values()
    ]
    for output in outputs:
        assert output.dtype == torch.float32
        assert torch.isfinite(output).all()


def test_score_sizes_of_the_reference_configs() -> None:
    assert get_config("siamrpnpp_r50").crop.score_size == 25
    assert get_config("siamrpnpp_mobilenetv2").crop.score_size == 25
    assert get_config("siamrpn_alex").crop.score_size == 21
    assert get_config("siamfc_alexnet").crop.score_size == 17


def test_batch_of_streams_equals_single_calls(streams_run: StreamsRun) -> None:
    run = streams_run
    # Different templates per row: a row correlated with another row's template would not match its call.
    assert not torch.allclose(run.single_embeddings[0], run.single_embeddings[1])
    # oneDNN picks its convolution algorithm, and so its summation order, by batch size: on AVX-512 CPUs
    # the deepest networks (SiamCAN R50) move by 1.6e-5 of their largest output. A row correlated with
    # another row's template would be off by the order of the output itself.
    for row in range(BATCH):
        assert_close_relative(run.batch_embedding[row], run.single_embeddings[row][0], 1e-4)
        for batched, single in zip(run.batch_outputs, run.single_outputs[row], strict=True):
            assert_close_relative(batched[row], single[0], 1e-4)


def test_uint8_crops_equal_the_same_float_crops(tracker: Tracker, streams_run: StreamsRun) -> None:
    run = streams_run
    with torch.inference_mode():
        embedding = TemplateStage(tracker.network)(run.crop_z[:1], run.box_prior[:1])
        outputs = SearchStage(tracker.network)(embedding, run.crop_x[:1])
    assert_close_relative(embedding, run.single_embeddings[0], 1e-6)
    for from_uint8, from_float in zip(outputs, run.single_outputs[0], strict=True):
        assert_close_relative(from_uint8, from_float, 1e-6)


def test_scripted_stages_equal_eager(tracker: Tracker, streams_run: StreamsRun) -> None:
    run = streams_run
    template, search = script_stages(tracker.network)
    with torch.inference_mode():
        embedding = template(run.crop_z[:2], run.box_prior[:2])
        outputs = search(embedding, run.crop_x[:2])
    assert isinstance(outputs, tuple)
    # Freezing folds batch norms into the convolutions, which moves results by a few ulps.
    assert_close_relative(embedding, run.batch_embedding[:2], 1e-4)
    for scripted, eager in zip(outputs, run.batch_outputs, strict=True):
        assert_close_relative(scripted, eager[:2], 1e-4)


def test_bf16_stages_are_close_to_fp32(tracker: Tracker, streams_run: StreamsRun) -> None:
    if not NATIVE_BF16 and tracker.config.backbone.kind not in CHEAP_BACKBONES:
        pytest.skip("bf16 is emulated on this CPU: too slow for this backbone")
    run = streams_run
    with torch.inference_mode():
        embedding = TemplateStage(tracker.network, Precision.BF16)(run.crop_z[:1], run.box_prior[:1])
        outputs = SearchStage(tracker.network, Precision.BF16)(embedding, run.crop_x[:1])
    assert embedding.dtype == torch.float32
    assert_close_relative(embedding, run.single_embeddings[0], 0.05)
    for reduced, full in zip(outputs, run.single_outputs[0], strict=True):
        assert reduced.dtype == torch.float32
        assert torch.isfinite(reduced).all()
        # No division: DCFNet's centerness output is all zeros (its head has none) and must stay zeros.
        assert float((reduced - full).norm()) <= 0.05 * float(full.norm())
    assert all(p.dtype == torch.float32 for p in tracker.network.parameters()), "the network was converted"


def test_depthwise_correlation_pairs_each_row_with_its_own_template() -> None:
    generator = torch.Generator().manual_seed(4)
    search = torch.randn(3, 4, 9, 9, generator=generator)
    kernel = torch.randn(3, 4, 3, 3, generator=generator)
    response = xcorr_depthwise(search, kernel)
    assert response.shape == (3, 4, 7, 7)
    for row in range(3):
        expected = nn.functional.conv2d(search[row : row + 1], kernel[row].unsqueeze(1), groups=4)
        torch.testing.assert_close(response[row : row + 1], expected)


def test_full_correlation_sums_channels_per_row() -> None:
    generator = torch.Generator().manual_seed(5)
    search = torch.randn(3, 4, 9, 9, generator=generator)
    kernel = torch.randn(3, 4, 3, 3, generator=generator)
    response = xcorr_full(search, kernel)
    assert response.shape == (3, 1, 7, 7)
    for row in range(3):
        expected = nn.functional.conv2d(search[row : row + 1], kernel[row : row + 1])
        torch.testing.assert_close(response[row : row + 1], expected)


def test_neck_crops_the_centre_7x7_of_template_maps_only() -> None:
    layer = AdjustLayer(8, 4, center_size=7).eval()
    template_map = torch.randn(1, 8, 15, 15)
    search_map = torch.randn(1, 8, 21, 21)
    with torch.inference_mode():
        torch.testing.assert_close(layer(template_map), layer.downsample(template_map)[:, :, 4:11, 4:11])
        assert layer(search_map).shape == (1, 4, 21, 21)


def test_small_staged_backbone_returns_the_maps_its_used_layers_number() -> None:
    # Maps 1..5: stage 1 (stride 4), stage 2, then the conv4..conv6 levels (stride 8), at DCFNet's sides.
    torch.manual_seed(6)
    backbone = SmallStagedBackbone((1, 2, 3, 4, 5)).eval()
    randomise_normalisation(backbone, torch.Generator().manual_seed(7))
    crop = crops(torch.Generator().manual_seed(8), 2, 191).float()
    with torch.inference_mode():
        every = backbone(crop)
        final = backbone.last_layers(backbone.stage2(backbone.stage1(crop)))
        backbone.used_layers = [5, 3]
        picked = backbone(crop)
    assert [tuple(m.shape) for m in every] == [(2, 16, 47, 47)] + [(2, 32, 23, 23)] * 4
    assert backbone.output_sides(191) == (47, 23)
    assert [backbone.output_sides(side) for side in (127, 255)] == [(31, 15), (63, 31)]
    torch.testing.assert_close(picked, [every[4], every[2]])
    torch.testing.assert_close(final, every[4])
    assert all(not torch.allclose(every[level], every[level + 1]) for level in (2, 3))
    for used_layers in [(0, 1), (3, 6), ()]:
        with pytest.raises(ValueError, match=r"numbered 1\.\.5"):
            SmallStagedBackbone(used_layers)
