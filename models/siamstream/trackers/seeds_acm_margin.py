"""Trackers of the source papers ACM (CVPR 2021) and SiamMargin (VOT2019 real-time winner).

- `siamban_acm_r50` loads the released SiamBAN-ACM weights (wencheng256/SiamBAN-ACM) and reproduces its
  tracker, including the switch for good to a 510 search crop after a large move. The reference repository
  publishes no tracking hyperparameters: these are SiamBAN r50's (VOT2018), which its tracker derives from.
- `siamrpnpp_acm_r50` and `siamfc_acm_alexnet` plug the same module into SiamRPN++ and SiamFC (our own key
  layouts, trained here); they keep their baselines' hyperparameters.
- `siammargin_r50` is SiamRPN++ r50 trained with the margin loss on the correlation map, tracking with the
  confidence-gated online template update (RoI-Aligned search features blended into the template).
"""

from siamstream.config import (
    BackboneConfig,
    CropConfig,
    Family,
    FCHyper,
    HeadConfig,
    RPNHyper,
    TemplateUpdateConfig,
    TrackerConfig,
)
from siamstream.registry import register_tracker
from siamstream.trackers.baselines import (
    R50_LAYERS,
    R50_NECK,
    SIAMBAN_R50_HYPER,
    SIAMRPNPP_R50_HYPER,
    published_source,
)
from siamstream.zoo import TRAINED_HERE

# SiamBAN-ACM tracker: a predicted move of more than half the context size to the right or down switches
# the search crop to twice the instance size for the rest of the sequence.
ACM_FAST_MOTION_INSTANCE = 2 * 255


@register_tracker
def siamban_acm_r50() -> TrackerConfig:
    return TrackerConfig(
        name="siamban_acm_r50",
        description="SiamBAN-ACM ResNet-50: asymmetric convolution with box-size prior, weighted l234 fusion",
        backbone=R50_LAYERS,
        neck=R50_NECK,
        head=HeadConfig(kind="ban", levels=3, weighted=True, correlation="acm"),
        hyper=RPNHyper.model_validate(
            {**SIAMBAN_R50_HYPER.model_dump(), "fast_motion_instance_size": ACM_FAST_MOTION_INSTANCE}
        ),
        weights=published_source("wencheng256/SiamBAN-ACM", "siamban_acm_r50"),
    )


@register_tracker
def siamrpnpp_acm_r50() -> TrackerConfig:
    return TrackerConfig(
        name="siamrpnpp_acm_r50",
        description="SiamRPN++-ACM ResNet-50: asymmetric convolution with box-size prior, weighted l234",
        backbone=R50_LAYERS,
        neck=R50_NECK,
        head=HeadConfig(kind="rpn", levels=3, weighted=True, correlation="acm"),
        hyper=SIAMRPNPP_R50_HYPER,
        weights=TRAINED_HERE,
    )


@register_tracker
def siamfc_acm_alexnet() -> TrackerConfig:
    return TrackerConfig(
        name="siamfc_acm_alexnet",
        description="SiamFC-ACM AlexNet: asymmetric convolution with box-size prior instead of xcorr",
        backbone=BackboneConfig(kind="alexnet_siamfc", used_layers=(5,)),
        head=HeadConfig(kind="siamfc", in_channels=256, correlation="acm"),
        crop=CropConfig(base_size=0),
        hyper=FCHyper(family=Family.SIAMFC),
        weights=TRAINED_HERE,
    )


@register_tracker
def siammargin_r50() -> TrackerConfig:
    return TrackerConfig(
        name="siammargin_r50",
        description="SiamMargin ResNet-50: SiamRPN++ with margin supervision and online template update",
        backbone=R50_LAYERS,
        neck=R50_NECK,
        head=HeadConfig(kind="rpn", levels=3, weighted=True, margin_supervision=True),
        hyper=SIAMRPNPP_R50_HYPER,
        template_update=TemplateUpdateConfig(enabled=True),
        weights=TRAINED_HERE,
    )
