"""SiamBAN-ACM's search-region switch: after a large move the tracker searches a larger crop for good.

The reference tracker (wencheng256/SiamBAN-ACM `SiamBANTracker.track`) sets a fast-motion flag when the
chosen box's centre moved, within one frame, more than half the context size `s_z` to the right or down
(positive image directions only), measured before the centre is clipped to the image. From the next
frame on it crops `fast_motion_instance_size` (510) instead of the instance size, with the score map,
window and points of that size (56), and never switches back.
"""

from __future__ import annotations

from siamstream.config import TrackerConfig
from siamstream.tracking.estimate import TargetEstimate
from siamstream.tracking.geometry import context_size
from siamstream.tracking.state import TrackerState


def search_config(config: TrackerConfig, state: TrackerState) -> TrackerConfig:
    """`config` with the crop geometry of the state's next search: the larger search crop once switched
    (`FamilyHyper.fast_motion_side`)."""
    size = config.hyper.fast_motion_side()
    if not state.fast_motion or size is None:
        return config
    return config.model_copy(update={"crop": config.crop.model_copy(update={"instance_size": size})})


def fast_motion_after(config: TrackerConfig, state: TrackerState, estimate: TargetEstimate) -> bool:
    """Whether the track searches the larger crop after the frame that moved `state` to `estimate`.

    `estimate.shift` is the unclipped centre move in image pixels; the threshold is half the context
    size of the target before the frame (image pixels, unrounded, as in the reference).
    """
    if state.fast_motion:
        return True
    if config.hyper.fast_motion_side() is None or estimate.shift is None:
        return False
    half_context = context_size(state.w, state.h, config.crop.context_amount) / 2
    return estimate.shift[0] > half_context or estimate.shift[1] > half_context
