"""The public baselines: pysot's SiamRPN++ family, SiamBAN, SiamCAR and SiamFC.

Hyperparameters are those of the reference configs of the same name, so that published weights give the
reference boxes (tests/models/test_reference_parity.py checks them against the reference code).
"""

from siamstream.config import (
    AnchorConfig,
    BackboneConfig,
    CARHyper,
    CropConfig,
    Family,
    FCHyper,
    HeadConfig,
    NeckConfig,
    RPNHyper,
    TrackerConfig,
    WeightsSource,
)
from siamstream.registry import register_tracker
from siamstream.zoo import PUBLISHED_WEIGHTS

PYSOT = "STVIR/pysot model zoo"
R50_LAYERS = BackboneConfig(kind="resnet50_atrous", used_layers=(2, 3, 4))
R50_NECK = NeckConfig(in_channels=(512, 1024, 2048))
# Post-processing of the ResNet-50 references, also kept by the trackers built on them (configs are frozen,
# so one instance can serve them all): pysot siamrpn_r50_l234_dwxcorr, siamban VOT2018, SiamCAR OTB.
SIAMRPNPP_R50_HYPER = RPNHyper(
    family=Family.SIAMRPN, penalty_k=0.05, window_influence=0.42, lr=0.38, anchors=AnchorConfig()
)
SIAMBAN_R50_HYPER = RPNHyper(family=Family.SIAMBAN, penalty_k=0.0851, window_influence=0.4633, lr=0.4442)
SIAMCAR_R50_HYPER = CARHyper(family=Family.SIAMCAR, penalty_k=0.2, window_influence=0.45, lr=0.35)


def published_source(origin: str, tracker: str) -> WeightsSource:
    """Weights from `origin`, under the licences the model zoo states for `tracker`'s published file."""
    return WeightsSource(origin=origin, licence=PUBLISHED_WEIGHTS[tracker].licence)


@register_tracker
def siamrpn_alex() -> TrackerConfig:
    return TrackerConfig(
        name="siamrpn_alex",
        description="SiamRPN++ AlexNet, depth-wise xcorr (pysot siamrpn_alex_dwxcorr)",
        backbone=BackboneConfig(kind="alexnet_legacy", used_layers=(5,)),
        head=HeadConfig(kind="rpn", in_channels=256, levels=1),
        crop=CropConfig(instance_size=287, base_size=0),
        hyper=RPNHyper(
            family=Family.SIAMRPN, penalty_k=0.16, window_influence=0.40, lr=0.30, anchors=AnchorConfig()
        ),
        weights=published_source(PYSOT, "siamrpn_alex"),
    )


@register_tracker
def siamrpnpp_mobilenetv2() -> TrackerConfig:
    return TrackerConfig(
        name="siamrpnpp_mobilenetv2",
        description="SiamRPN++ MobileNetV2 x1.4, three levels, mean fusion "
        "(pysot siamrpn_mobilev2_l234_dwxcorr)",
        backbone=BackboneConfig(kind="mobilenetv2", used_layers=(3, 5, 7), width_mult=1.4),
        neck=NeckConfig(in_channels=(44, 134, 448)),
        head=HeadConfig(kind="rpn", levels=3, weighted=False),
        hyper=RPNHyper(
            family=Family.SIAMRPN, penalty_k=0.04, window_influence=0.4, lr=0.5, anchors=AnchorConfig()
        ),
        weights=published_source(PYSOT, "siamrpnpp_mobilenetv2"),
    )


@register_tracker
def siamrpnpp_r50() -> TrackerConfig:
    return TrackerConfig(
        name="siamrpnpp_r50",
        description="SiamRPN++ ResNet-50, weighted l234 fusion (pysot siamrpn_r50_l234_dwxcorr)",
        backbone=R50_LAYERS,
        neck=R50_NECK,
        head=HeadConfig(kind="rpn", levels=3, weighted=True),
        hyper=SIAMRPNPP_R50_HYPER,
        weights=published_source(PYSOT, "siamrpnpp_r50"),
    )


@register_tracker
def siamrpnpp_r50_otb() -> TrackerConfig:
    return TrackerConfig(
        name="siamrpnpp_r50_otb",
        description="SiamRPN++ ResNet-50, unweighted l234 fusion, OTB hyperparameters "
        "(pysot siamrpn_r50_l234_dwxcorr_otb)",
        backbone=R50_LAYERS,
        neck=R50_NECK,
        head=HeadConfig(kind="rpn", levels=3, weighted=False),
        hyper=RPNHyper(
            family=Family.SIAMRPN, penalty_k=0.24, window_influence=0.5, lr=0.25, anchors=AnchorConfig()
        ),
        weights=published_source(PYSOT, "siamrpnpp_r50_otb"),
    )


@register_tracker
def siamban_r50() -> TrackerConfig:
    return TrackerConfig(
        name="siamban_r50",
        description="SiamBAN ResNet-50, weighted l234 fusion, VOT2018 hyperparameters (hqucv/siamban)",
        backbone=R50_LAYERS,
        neck=R50_NECK,
        head=HeadConfig(kind="ban", levels=3, weighted=True),
        hyper=SIAMBAN_R50_HYPER,
        weights=published_source("hqucv/siamban model zoo", "siamban_r50"),
    )


@register_tracker
def siamcar_r50() -> TrackerConfig:
    return TrackerConfig(
        name="siamcar_r50",
        description="SiamCAR ResNet-50, l234 concatenation, OTB hyperparameters (ohhhyeahhh/SiamCAR)",
        backbone=R50_LAYERS,
        neck=R50_NECK,
        head=HeadConfig(kind="car", levels=3),
        hyper=SIAMCAR_R50_HYPER,
        weights=published_source("ohhhyeahhh/SiamCAR releases", "siamcar_r50"),
    )


@register_tracker
def siamfc_alexnet() -> TrackerConfig:
    return TrackerConfig(
        name="siamfc_alexnet",
        description="SiamFC AlexNet: full cross-correlation, three-scale pyramid, upsampled response",
        backbone=BackboneConfig(kind="alexnet_siamfc", used_layers=(5,)),
        head=HeadConfig(kind="siamfc", in_channels=256),
        crop=CropConfig(base_size=0),
        hyper=FCHyper(family=Family.SIAMFC),
        weights=published_source("siamfc-pytorch layout (huanglianghua/siamfc-pytorch)", "siamfc_alexnet"),
    )
