"""One dispatch per family: the registries of networks, post-processors and training recipes cover every
registered tracker, and family behaviour is reached through the family's post-processor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from siamstream.config import StatusConfig, TrackerConfig, merge_fields
from siamstream.nn.network import build_network, register_network
from siamstream.registry import get_config, list_trackers
from siamstream.tracking.geometry import crop_patch, crop_patch_siamfc
from siamstream.tracking.post_processing import post_processor, register_post_processor
from siamstream.tracking.rpn import SiamRPNPostProcessor
from siamstream.tracking.state import TrackStatus
from siamstream.tracking.step import init_track, prepare_search
from siamstream.training.config import default_training_config, register_recipe

# The trackers whose networks run on a CPU within a test: the small study arms and the AlexNet ones.
SMALL_TRACKERS = [name for name in list_trackers() if name.endswith("_small") or "alex" in name]


def variant(name: str, changes: dict) -> TrackerConfig:
    return TrackerConfig.model_validate(merge_fields(get_config(name).model_dump(), changes))


@pytest.mark.parametrize("name", list_trackers())
def test_every_tracker_has_its_familys_post_processor_and_a_training_recipe(name: str) -> None:
    config = get_config(name)
    assert post_processor(config).family is config.family
    assert default_training_config(config).epochs >= 1


@pytest.mark.parametrize("name", SMALL_TRACKERS)
def test_the_network_gives_the_outputs_its_post_processor_expects(name: str) -> None:
    config = get_config(name)
    network = build_network(config)
    crop = config.crop
    crop_z = torch.zeros(2, 3, crop.exemplar_size, crop.exemplar_size)
    crop_x = torch.zeros(2, 3, crop.instance_size, crop.instance_size)
    with torch.no_grad():
        outputs = network.search_outputs(network.template_embedding(crop_z, torch.ones(2, 2)), crop_x)
    assert [tuple(output.shape) for output in outputs] == post_processor(config).output_shapes(config, 2)
    assert len(network.search_output_names) == len(outputs)


def test_a_head_and_correlation_without_a_network_are_refused_by_name() -> None:
    config = variant("siamcar_small", {"head": {"correlation": "acm"}})
    with pytest.raises(ValueError, match=r"no network of head kind 'car' with correlation 'acm'.*car/xcorr"):
        build_network(config)


def test_each_family_and_variant_registers_once() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_network("rpn", correlation="acm")(lambda config: build_network(config))
    with pytest.raises(ValueError, match="registered twice"):
        register_post_processor(SiamRPNPostProcessor())
    with pytest.raises(ValueError, match="registered twice"):
        register_recipe("siamfc")(default_training_config)


@pytest.mark.parametrize("name", ["siamban_small", "siamfc_alexnet"])
def test_a_lost_search_crops_each_centre_as_the_normal_search_would(name: str) -> None:
    # The lost search and the normal search share one crop helper: each lost crop is the family's crop
    # of the lost side around its centre, at the normal search's scale.
    config = variant(name, {"long_term": {"enabled": True, "lost_instance_size": 447, "tiles_per_frame": 4}})
    frame = np.random.default_rng(2).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    state, _ = init_track(config, frame, (300.0, 200.0, 40.0, 30.0))
    lost = state.model_copy(update={"status": TrackStatus.LOST})
    request = prepare_search(config, lost, frame)
    plan = request.lost_search
    assert plan is not None and len(plan.centres) == request.crops.shape[0] > 1
    assert plan.scale_z == pytest.approx(prepare_search(config, state, frame).scale_z)
    for crop, (cx, cy) in zip(request.crops, plan.centres, strict=True):
        if config.family == "siamfc":
            centre = (np.float32(cx), np.float32(cy))
            expected = crop_patch_siamfc(frame, centre, plan.image_side, 447, state.channel_average)
        else:
            expected = crop_patch(frame, (cx, cy), 447, round(plan.image_side), state.channel_average)
        np.testing.assert_array_equal(crop, expected.transpose(2, 0, 1))


def test_a_status_whose_lost_score_exceeds_its_tracking_score_is_refused() -> None:
    assert StatusConfig(tracking_above=0.5, lost_below=0.5).lost_below == 0.5
    with pytest.raises(ValidationError, match=r"lost_below 0\.7 must be at most status\.tracking_above 0\.6"):
        StatusConfig(tracking_above=0.6, lost_below=0.7)
