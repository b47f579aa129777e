"""Backbone selection by `BackboneConfig.kind`.

Every backbone maps BGR crops [B,3,S,S] (0..255) to the list of its used feature maps, and reports the side
of those maps for a given crop side (`output_side`), which fixes the template embedding's layout.
"""

from siamstream.config import BackboneConfig
from siamstream.nn.alexnet import AlexNetLegacy, AlexNetSiamFC
from siamstream.nn.mobilenet_v2 import MobileNetV2
from siamstream.nn.resnet_atrous import ResNet50Atrous
from siamstream.nn.small_staged import SmallStagedBackbone, SmallStagedCorrelationBackbone
from siamstream.nn.staged_correlation import FUSED_STAGES, StagedCorrelationBackbone

Backbone = (
    ResNet50Atrous
    | MobileNetV2
    | AlexNetLegacy
    | AlexNetSiamFC
    | StagedCorrelationBackbone
    | SmallStagedBackbone
    | SmallStagedCorrelationBackbone
)


def build_backbone(config: BackboneConfig, fusion_stages: tuple[int, ...] = FUSED_STAGES) -> Backbone:
    """The backbone named by `config.kind`, with the key layout of its reference checkpoints;
    `fusion_stages` are the stages DCFNet's backbones ("dcfnet_resnet50", "small_staged_fused") fuse
    after (`HeadConfig.fusion_stages`)."""
    if config.kind == "resnet50_atrous":
        return ResNet50Atrous(config.used_layers)
    if config.kind == "mobilenetv2":
        return MobileNetV2(config.width_mult, config.used_layers)
    if config.kind == "alexnet_legacy":
        return AlexNetLegacy()
    if config.kind == "alexnet_siamfc":
        return AlexNetSiamFC()
    if config.kind == "dcfnet_resnet50":
        return StagedCorrelationBackbone(fusion_stages)
    if config.kind == "small_staged":
        return SmallStagedBackbone(config.used_layers)
    if config.kind == "small_staged_fused":
        return SmallStagedCorrelationBackbone(config.used_layers, fusion_stages)
    raise ValueError(f"unknown backbone kind {config.kind!r}")
