"""The arms of the from-scratch CPU study: each ResNet-50 tracker on one small backbone.

Every tracker here is its full-size sibling's config (head kind, levels, fusion, correlation, template
update, hyperparameters) with the small staged backbone of `nn.small_staged` and the neck and head
narrowed to `SMALL_CHANNELS`, so that the arms differ only in the component their paper adds.
`default_training_config` gives each its sibling's recipe (losses, labels, objective, schedule), except
that the backbone, which has no pre-trained weights, is trained whole from the start.

The multi-level trackers take the backbone's three stride-8 maps (conv4..conv6); `dcfnet_small` takes the
same backbone with DCFNet's two correlation-fusions and correlates its final map. `siamcar_small` is
therefore DCFNet's "no fusion" ablation except for the centerness branch (trained and used by SiamCAR,
absent from DCFNet) and SiamCAR's own level handling (three neck-adjusted levels correlated, concatenated
and reduced by `down`, where DCFNet correlates the final map alone, without a neck).
"""

from siamstream.config import BackboneConfig, TrackerConfig
from siamstream.registry import register_tracker
from siamstream.trackers.baselines import siamban_r50, siamcar_r50, siamrpnpp_r50
from siamstream.trackers.seeds_acm_margin import siamban_acm_r50, siammargin_r50, siamrpnpp_acm_r50
from siamstream.trackers.seeds_dcf_can import dcfnet_r50, siamcan_r50
from siamstream.zoo import TRAINED_HERE

# Width of the small backbone's stride-8 maps (`nn.small_staged.LEVEL_CHANNELS`), kept by the neck and
# the heads: DCFNet's head takes the backbone's final map as it is.
SMALL_CHANNELS = 32
# The backbone's conv4..conv6 outputs (its maps 3..5), for the three-level heads.
SMALL_LEVELS = BackboneConfig(kind="small_staged", used_layers=(3, 4, 5))


def on_the_small_backbone(sibling: TrackerConfig, name: str, description: str) -> TrackerConfig:
    """`sibling` on the small backbone, its neck and head `SMALL_CHANNELS` wide; everything else kept."""
    fields = sibling.model_dump()
    if sibling.head.kind == "dcf":
        # DCFNet's fusions belong to the backbone; its used layers are the stages they follow.
        backbone = BackboneConfig(kind="small_staged_fused", used_layers=sibling.backbone.used_layers)
    else:
        levels = len(SMALL_LEVELS.used_layers)
        if sibling.neck is None or sibling.head.levels != levels:
            raise ValueError(f"{sibling.name}: the small trackers take {levels} neck-adjusted levels")
        backbone = SMALL_LEVELS
        fields["neck"] |= {"in_channels": (SMALL_CHANNELS,) * levels, "out_channels": SMALL_CHANNELS}
    fields["head"] |= {"in_channels": SMALL_CHANNELS}
    fields |= {
        "name": name,
        "description": description,
        "backbone": backbone.model_dump(),
        "weights": TRAINED_HERE.model_dump(),
    }
    return TrackerConfig.model_validate(fields)


@register_tracker
def siamrpnpp_small() -> TrackerConfig:
    return on_the_small_backbone(
        siamrpnpp_r50(), "siamrpnpp_small", "SiamRPN++ on the small staged backbone, weighted 3-level fusion"
    )


@register_tracker
def siamrpnpp_acm_small() -> TrackerConfig:
    return on_the_small_backbone(
        siamrpnpp_acm_r50(),
        "siamrpnpp_acm_small",
        "SiamRPN++-ACM on the small staged backbone: asymmetric convolution with box-size prior",
    )


@register_tracker
def siammargin_small() -> TrackerConfig:
    return on_the_small_backbone(
        siammargin_r50(),
        "siammargin_small",
        "SiamMargin on the small staged backbone: margin supervision and online template update",
    )


@register_tracker
def siamban_small() -> TrackerConfig:
    return on_the_small_backbone(
        siamban_r50(), "siamban_small", "SiamBAN on the small staged backbone, weighted 3-level fusion"
    )


@register_tracker
def siamban_acm_small() -> TrackerConfig:
    return on_the_small_backbone(
        siamban_acm_r50(),
        "siamban_acm_small",
        "SiamBAN-ACM on the small staged backbone: asymmetric convolution with box-size prior",
    )


@register_tracker
def siamcan_small() -> TrackerConfig:
    return on_the_small_backbone(
        siamcan_r50(),
        "siamcan_small",
        "SiamCAN on the small staged backbone: cross-channel and self-spatial attention, anchor-free",
    )


@register_tracker
def siamcar_small() -> TrackerConfig:
    return on_the_small_backbone(
        siamcar_r50(),
        "siamcar_small",
        "SiamCAR on the small staged backbone, 3-level concatenation (DCFNet's no-fusion counterpart)",
    )


@register_tracker
def dcfnet_small() -> TrackerConfig:
    return on_the_small_backbone(
        dcfnet_r50(),
        "dcfnet_small",
        "DCFNet on the small staged backbone with its two correlation-fusions, no centerness",
    )
