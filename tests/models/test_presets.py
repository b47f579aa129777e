"""Hyperparameter presets from the reference code bases, config names as tracker aliases, checked changes
of hyperparameters, and which registered trackers a checkpoint's key layout fits."""

from __future__ import annotations

import pytest
import torch

from siamstream.checkpoint import trackers_fitting
from siamstream.config import CARHyper, RPNHyper, SearchConfig
from siamstream.nn.network import build_network
from siamstream.presets import (
    CONFIG_PRESETS,
    PRESETS,
    TRACKER_ALIASES,
    HyperparameterError,
    HyperPreset,
    resolve_tracker,
    settable_hyperparameters,
    tracker_config,
    with_hyper,
    with_preset,
)
from siamstream.registry import get_config, list_trackers

# siamban_r50 is registered with SiamBAN's VOT2018 config; its OTB100 config is a preset only.
REGISTERED_FROM = [preset for preset in CONFIG_PRESETS if preset.name != "siamban_r50_l234_otb"]


@pytest.mark.parametrize("preset", REGISTERED_FROM, ids=lambda preset: preset.name)
def test_a_config_preset_holds_the_values_its_tracker_was_registered_with(preset: HyperPreset) -> None:
    registered = get_config(preset.tracker).hyper
    for key, value in preset.values.items():
        # Registered SiamBAN values are the reference's rounded to four decimals.
        assert getattr(registered, key) == pytest.approx(value, abs=1e-4), key


def test_siamcar_benchmark_presets_are_its_test_values() -> None:
    siamcar = get_config("siamcar_r50")
    values = {
        name: tuple(
            getattr(with_preset(siamcar, name).hyper, key) for key in ("lr", "penalty_k", "window_influence")
        )
        for name in ("siamcar_otb100", "siamcar_got10k", "siamcar_uav123", "siamcar_lasot")
    }
    assert values == {
        "siamcar_otb100": (0.35, 0.2, 0.45),
        "siamcar_got10k": (0.7, 0.06, 0.1),
        "siamcar_uav123": (0.4, 0.2, 0.3),
        "siamcar_lasot": (0.33, 0.04, 0.3),
    }
    # The registered SiamCAR is the OTB100 one; DCFNet, on SiamCAR's post-processing, takes them too.
    assert with_preset(siamcar, "siamcar_otb100").hyper == siamcar.hyper
    dcfnet_lasot = with_preset(get_config("dcfnet_r50"), "siamcar_lasot").hyper
    assert isinstance(dcfnet_lasot, CARHyper) and dcfnet_lasot.lr == 0.33


def test_config_names_resolve_to_registered_trackers_with_their_values() -> None:
    assert TRACKER_ALIASES == {
        "siamrpn_r50_l234_dwxcorr": "siamrpnpp_r50",
        "siamrpn_r50_l234_dwxcorr_otb": "siamrpnpp_r50_otb",
        "siamrpn_alex_dwxcorr": "siamrpn_alex",
        "siamrpn_mobilev2_l234_dwxcorr": "siamrpnpp_mobilenetv2",
        "siamban_r50_l234": "siamban_r50",
        "siamban_r50_l234_otb": "siamban_r50",
    }
    assert set(TRACKER_ALIASES.values()) <= set(list_trackers())
    assert resolve_tracker("siamcar_r50") == ("siamcar_r50", None)
    assert resolve_tracker("siamrpn_alex_dwxcorr") == ("siamrpn_alex", PRESETS["siamrpn_alex_dwxcorr"])
    otb = tracker_config("siamban_r50_l234_otb")
    assert otb.name == "siamban_r50" and otb.head == get_config("siamban_r50").head
    assert isinstance(otb.hyper, RPNHyper)
    assert (otb.hyper.penalty_k, otb.hyper.window_influence, otb.hyper.lr) == (
        0.020530504470126613,
        0.3850733326567302,
        0.4730770315643308,
    )
    with pytest.raises(HyperparameterError, match="unknown tracker 'siamcar_lasot'"):
        resolve_tracker("siamcar_lasot")  # a benchmark preset names no network


def test_settable_hyperparameters_per_family() -> None:
    assert settable_hyperparameters(get_config("siamrpn_alex")) == (
        "fast_motion_instance_size",
        "lr",
        "min_size",
        "penalty_k",
        "window_influence",
    )
    assert settable_hyperparameters(get_config("siamcar_r50")) == (
        "hanming",
        "lr",
        "penalty_k",
        "region_l",
        "region_s",
        "window_influence",
    )
    assert "anchors" not in settable_hyperparameters(get_config("siamrpnpp_r50"))


@pytest.mark.parametrize("name", list_trackers())
def test_every_registered_tracker_takes_a_window_influence(name: str) -> None:
    config = get_config(name)
    changed = with_hyper(config, {"window_influence": 0.25})
    assert changed.hyper.window_influence == 0.25
    assert changed.model_copy(update={"hyper": config.hyper}) == config  # nothing else moved


def test_with_hyper_refuses_unknown_names_bad_values_and_broken_configs() -> None:
    siamcar = get_config("siamcar_r50")
    changed = with_hyper(siamcar, {"hanming": False}).hyper
    assert isinstance(changed, CARHyper) and changed.hanming is False
    with pytest.raises(HyperparameterError, match=r"unknown hyperparameter 'anchors' for siamrpnpp_r50"):
        with_hyper(get_config("siamrpnpp_r50"), {"anchors": {"stride": 4}})
    with pytest.raises(
        HyperparameterError, match=r"lr='fast' for siamcar_r50: Input should be a valid number"
    ):
        with_hyper(siamcar, {"lr": "fast"})
    with pytest.raises(HyperparameterError, match=r"penalty_k=inf for siamcar_r50: must be finite"):
        with_hyper(siamcar, {"penalty_k": float("inf")})
    # The config's own rules still hold: SiamMargin's search options exclude SiamBAN-ACM's crop rule.
    searching = get_config("siamrpnpp_r50").model_copy(update={"search": SearchConfig(one_more_search=True)})
    with pytest.raises(HyperparameterError, match="fast_motion_instance_size"):
        with_hyper(searching, {"fast_motion_instance_size": 510})
    with pytest.raises(HyperparameterError, match="unknown preset 'otb'"):
        with_preset(siamcar, "otb")


def test_a_checkpoint_layout_names_the_trackers_it_fits() -> None:
    with torch.device("meta"):
        siamrpnpp = build_network(get_config("siamrpnpp_r50")).state_dict()
    # SiamMargin is SiamRPN++ trained differently: the same keys and shapes.
    assert trackers_fitting(siamrpnpp) == ["siammargin_r50", "siamrpnpp_r50"]
    del siamrpnpp["rpn_head.cls_weight"]  # the unweighted (OTB) variant has no fusion weights
    del siamrpnpp["rpn_head.loc_weight"]
    assert trackers_fitting(siamrpnpp) == ["siamrpnpp_r50_otb"]
    assert trackers_fitting({"conv.weight": torch.zeros(3, 3)}) == []
