"""DCFNet ("Staged Depthwise Correlation and Feature Fusion for Siamese Object Tracking") and SiamCAN
("SiamCAN: simple yet effective method to enhance Siamese short-term tracking"): two of the source papers.

Neither paper publishes weights in a pysot layout; the key layouts are this library's (see
`siamstream.nn.dcfnet` and `siamstream.nn.siamcan`), and the weights come from our own training.
Post-processing reuses the families' code: DCFNet the SiamCAR path (its flat centerness map counts as 1
everywhere), SiamCAN the SiamBAN path (points, penalty, cosine window, size smoothing).
"""

from siamstream.config import BackboneConfig, HeadConfig, TrackerConfig
from siamstream.registry import register_tracker
from siamstream.trackers.baselines import R50_LAYERS, R50_NECK, SIAMBAN_R50_HYPER, SIAMCAR_R50_HYPER
from siamstream.zoo import TRAINED_HERE


@register_tracker
def dcfnet_r50() -> TrackerConfig:
    # The paper gives no tracking hyperparameters; these are SiamCAR's OTB values, the head it adopts.
    return TrackerConfig(
        name="dcfnet_r50",
        description="DCFNet: trimmed ResNet-50 with staged depth-wise correlation-fusion, SiamCAR head "
        "without centerness",
        backbone=BackboneConfig(kind="dcfnet_resnet50", used_layers=(1, 2)),
        head=HeadConfig(kind="dcf", in_channels=256, levels=1),
        hyper=SIAMCAR_R50_HYPER,
        weights=TRAINED_HERE,
    )


@register_tracker
def siamcan_r50() -> TrackerConfig:
    # The paper uses SiamRPN's scale penalty and cosine window without printing values; these are
    # SiamBAN's ResNet-50 VOT2018 values, the baseline SiamCAN is built on and compared with.
    return TrackerConfig(
        name="siamcan_r50",
        description="SiamCAN ResNet-50: cross-channel and self-spatial attention, weighted l234 fusion, "
        "anchor-free",
        backbone=R50_LAYERS,
        neck=R50_NECK,
        head=HeadConfig(
            kind="can",
            levels=3,
            weighted=True,
            channel_attention_kernel=5,
            spatial_attention_kernel=7,
        ),
        hyper=SIAMBAN_R50_HYPER,
        weights=TRAINED_HERE,
    )
