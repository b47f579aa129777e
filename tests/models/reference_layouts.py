"""The reference networks' state-dict layouts, written down from the reference sources (pysot, siamban,
SiamCAR, siamfc-pytorch) and not derived from `siamstream.nn`, and random weights in those layouts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from siamstream.config import TrackerConfig
from siamstream.nn.network import build_network
from siamstream.registry import get_config

Shape = tuple[int, ...]
Layout = dict[str, Shape]


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


def reference_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the tracker's reference layout, with random values and no BN counters."""
    generator = torch.Generator().manual_seed(seed)
    network = build_network(get_config(name))
    return {
        key: torch.rand(value.shape, generator=generator, dtype=value.dtype)
        if value.is_floating_point()
        else value
        for key, value in network.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }


def randomise_running_statistics(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running mean and variance when `module` is a batch norm (call under no_grad)."""
    if isinstance(module, nn.BatchNorm2d):
        assert module.running_mean is not None and module.running_var is not None  # tracked stats
        module.running_mean.uniform_(-0.2, 0.2, generator=generator)
        module.running_var.uniform_(0.5, 2.0, generator=generator)


def randomise_normalisation(network: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial normalisation statistics and affine terms, and non-uniform level weights."""
    with torch.no_grad():
        for module in network.modules():
            randomise_running_statistics(module, generator)
            if isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
        for name, parameter in network.named_parameters():
            if name.endswith(("cls_weight", "loc_weight", "level_weight")):
                parameter.uniform_(0.5, 1.5, generator=generator)
            if name.endswith("loc_scale"):  # small enough that exp(loc * loc_scale) stays well scaled
                parameter.uniform_(0.01, 0.03, generator=generator)
