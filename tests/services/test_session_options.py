"""Per-session option overrides: bounds, family applicability, effective values."""

from __future__ import annotations

import math

import pytest

from siamstream.config import RPNHyper
from siamstream.registry import get_config
from siamstream_services.core.errors import InvalidArgument
from siamstream_services.core.options import TrackOptions, apply_options, effective_options


def test_overrides_reach_the_config_and_read_back() -> None:
    options = TrackOptions.parse(
        {"penalty_k": 0.3, "lr": 0.1, "tracking_threshold": 0.7, "template_update": True}
    )
    config = apply_options(get_config("siamrpn_alex"), options)
    assert isinstance(config.hyper, RPNHyper)
    assert (config.hyper.penalty_k, config.hyper.lr, config.status.tracking_above) == (0.3, 0.1, 0.7)
    assert config.template_update.enabled
    effective = effective_options(config)
    assert effective.window_influence == 0.40 and effective.lost_after_frames == config.status.lost_after


@pytest.mark.parametrize(
    "values",
    [
        {"penalty_k": -0.1},
        {"window_influence": 1.5},
        {"lr": math.nan},
        {"tracking_threshold": math.inf},
        {"lost_after_frames": 1001},
        {"lost_after_frames": 0},
        {"unknown_option": 1.0},
    ],
)
def test_out_of_range_options_are_invalid(values: dict) -> None:
    with pytest.raises(InvalidArgument, match="invalid options"):
        TrackOptions.parse(values)


def test_hyperparameter_the_family_lacks_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="penalty_k does not apply to siamfc_alexnet"):
        apply_options(get_config("siamfc_alexnet"), TrackOptions(penalty_k=0.1))


def test_lost_threshold_above_tracking_threshold_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="at most tracking_threshold"):
        apply_options(get_config("siamrpn_alex"), TrackOptions(lost_threshold=0.9))


def test_search_options_reach_the_config_and_read_back() -> None:
    options = TrackOptions.parse({"one_more_search": True, "adaptive_region": True})
    config = apply_options(get_config("siammargin_small"), options)
    assert config.search.one_more_search and config.search.adaptive_region
    effective = effective_options(config)
    assert effective.one_more_search and effective.adaptive_region
    assert not effective_options(get_config("siammargin_small")).adaptive_region  # off by default


@pytest.mark.parametrize("tracker", ["siamfc_alexnet", "siamban_acm_small"])
def test_search_options_the_tracker_cannot_take_are_invalid(tracker: str) -> None:
    with pytest.raises(InvalidArgument, match=f"invalid options for {tracker}"):
        apply_options(get_config(tracker), TrackOptions(one_more_search=True))
