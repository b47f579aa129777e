"""Named hyperparameter sets from the reference code bases, their config names as tracker aliases, and
checked changes of a tracker's hyperparameters (`TrackerConfig.hyper`).

Two kinds of preset:
- config presets carry the name of a reference experiment config (pysot's `experiments/<name>/config.yaml`,
  SiamBAN's likewise) and its TRACK values; the name is also an alias of the registered tracker that has
  that config's network, so `siamrpn_r50_l234_dwxcorr` means `siamrpnpp_r50` with those values;
- benchmark presets are the per-benchmark values a reference tests with (SiamCAR's `tools/test.py`
  reads `cfg.HP_SEARCH.<dataset>` of `pysot/core/config.py` as `[lr, penalty_k, window_lr]`;
  `window_lr` is our `window_influence`). Both files read at `SIAMCAR`, the commit that set those values;
  the one later commit to either only edits a help text of `tools/test.py`.

Every value was read off the file named in its preset's `source`, pinned to the commit it was read at. A
preset applies to any tracker of its tracker's post-processing family (the fields it sets exist there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from siamstream.config import TrackerConfig, merge_fields
from siamstream.registry import get_config, list_trackers

PYSOT = "STVIR/pysot@c7fd71c8b92cc8403e3333ba55fa305ac8aaa602"
PYSOT_MOBILENET = "STVIR/pysot@00d6eced43b709215bd5b1a6a49f68a968f461a9"
SIAMBAN = "hqucv/siamban@1cfdfebce5447ff44e6bba89a2bfccf4915d17c9"
SIAMCAR = "ohhhyeahhh/SiamCAR@5f19dfaa42d28b19fa20629b5307042a3ffa928b"


class HyperparameterError(ValueError):
    """A hyperparameter change, preset or tracker alias that does not fit the tracker."""


@dataclass(frozen=True)
class HyperPreset:
    """Hyperparameter values (`TrackerConfig.hyper` fields) tuned by a reference for `tracker`'s network,
    as found in `source` (repository@commit: path and key)."""

    name: str
    tracker: str
    values: Mapping[str, float]
    source: str


CONFIG_PRESETS = (
    HyperPreset(
        name="siamrpn_r50_l234_dwxcorr",
        tracker="siamrpnpp_r50",
        values={"penalty_k": 0.05, "window_influence": 0.42, "lr": 0.38},
        source=f"{PYSOT}: experiments/siamrpn_r50_l234_dwxcorr/config.yaml TRACK",
    ),
    HyperPreset(
        name="siamrpn_r50_l234_dwxcorr_otb",
        tracker="siamrpnpp_r50_otb",
        values={"penalty_k": 0.24, "window_influence": 0.5, "lr": 0.25},
        source=f"{PYSOT}: experiments/siamrpn_r50_l234_dwxcorr_otb/config.yaml TRACK",
    ),
    HyperPreset(
        name="siamrpn_alex_dwxcorr",
        tracker="siamrpn_alex",
        values={"penalty_k": 0.16, "window_influence": 0.40, "lr": 0.30},
        source=f"{PYSOT}: experiments/siamrpn_alex_dwxcorr/config.yaml TRACK",
    ),
    HyperPreset(
        name="siamrpn_mobilev2_l234_dwxcorr",
        tracker="siamrpnpp_mobilenetv2",
        values={"penalty_k": 0.04, "window_influence": 0.4, "lr": 0.5},
        source=f"{PYSOT_MOBILENET}: experiments/siamrpn_mobilev2_l234_dwxcorr/config.yaml TRACK",
    ),
    HyperPreset(
        name="siamban_r50_l234",
        tracker="siamban_r50",
        values={
            "penalty_k": 0.08513642556896711,
            "window_influence": 0.4632532824922313,
            "lr": 0.44418184746462425,
        },
        source=f"{SIAMBAN}: experiments/siamban_r50_l234/config.yaml TRACK (VOT2018)",
    ),
    HyperPreset(
        name="siamban_r50_l234_otb",
        tracker="siamban_r50",
        values={
            "penalty_k": 0.020530504470126613,
            "window_influence": 0.3850733326567302,
            "lr": 0.4730770315643308,
        },
        source=f"{SIAMBAN}: experiments/siamban_r50_l234_otb/config.yaml TRACK (OTB100)",
    ),
)

BENCHMARK_PRESETS = (
    HyperPreset(
        name="siamcar_otb100",
        tracker="siamcar_r50",
        values={"lr": 0.35, "penalty_k": 0.2, "window_influence": 0.45},
        source=f"{SIAMCAR}: pysot/core/config.py HP_SEARCH.OTB100",
    ),
    HyperPreset(
        name="siamcar_got10k",
        tracker="siamcar_r50",
        values={"lr": 0.7, "penalty_k": 0.06, "window_influence": 0.1},
        source=f"{SIAMCAR}: pysot/core/config.py HP_SEARCH.GOT10K",
    ),
    HyperPreset(
        name="siamcar_uav123",
        tracker="siamcar_r50",
        values={"lr": 0.4, "penalty_k": 0.2, "window_influence": 0.3},
        source=f"{SIAMCAR}: pysot/core/config.py HP_SEARCH.UAV123",
    ),
    HyperPreset(
        name="siamcar_lasot",
        tracker="siamcar_r50",
        values={"lr": 0.33, "penalty_k": 0.04, "window_influence": 0.3},
        source=f"{SIAMCAR}: pysot/core/config.py HP_SEARCH.LaSOT",
    ),
)

PRESETS = {preset.name: preset for preset in (*CONFIG_PRESETS, *BENCHMARK_PRESETS)}
TRACKER_ALIASES = {preset.name: preset.tracker for preset in CONFIG_PRESETS}


def resolve_tracker(name: str) -> tuple[str, HyperPreset | None]:
    """The registered tracker `name` denotes and, for a reference config name, that config's preset.

    Raises HyperparameterError naming the registered trackers and the accepted config names."""
    if name in list_trackers():
        return name, None
    if name not in TRACKER_ALIASES:
        raise HyperparameterError(
            f"unknown tracker {name!r}; registered: {', '.join(list_trackers())}; "
            f"reference config names: {', '.join(sorted(TRACKER_ALIASES))}"
        )
    preset = PRESETS[name]
    return preset.tracker, preset


def tracker_config(name: str) -> TrackerConfig:
    """The config `name` denotes: a registered tracker's default, or for a reference config name its
    tracker's with that config's hyperparameters."""
    tracker, preset = resolve_tracker(name)
    config = get_config(tracker)
    return config if preset is None else with_preset(config, preset.name)


def with_preset(config: TrackerConfig, name: str) -> TrackerConfig:
    """`config` with the hyperparameters of preset `name`; the preset must be for `config`'s family."""
    preset = PRESETS.get(name)
    if preset is None:
        raise HyperparameterError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    family = get_config(preset.tracker).family
    if family is not config.family:
        fitting = [other for other, p in PRESETS.items() if get_config(p.tracker).family is config.family]
        raise HyperparameterError(
            f"preset {name!r} is for the {family.value} family; {config.name} is {config.family.value} "
            f"(its presets: {', '.join(sorted(fitting)) or 'none'})"
        )
    return with_hyper(config, preset.values)


def settable_hyperparameters(config: TrackerConfig) -> tuple[str, ...]:
    """Names of the `hyper` fields `with_hyper` may change: all but the family and nested sections (the
    anchors fix the head's output layout)."""
    fields = type(config.hyper).model_fields
    return tuple(
        sorted(
            name for name, field in fields.items() if name != "family" and not _is_section(field.annotation)
        )
    )


def _is_section(annotation: Any) -> bool:
    candidates = get_args(annotation) or (annotation,)
    return any(isinstance(candidate, type) and issubclass(candidate, BaseModel) for candidate in candidates)


def with_hyper(config: TrackerConfig, changes: Mapping[str, Any]) -> TrackerConfig:
    """`config` with the named hyperparameters replaced, validated against its family's typed
    hyperparameter model. Raises HyperparameterError for an unknown name or a value of the wrong type."""
    settable = settable_hyperparameters(config)
    for key in changes:
        if key not in settable:
            raise HyperparameterError(
                f"unknown hyperparameter {key!r} for {config.name} ({config.family.value}); "
                f"settable: {', '.join(settable)}"
            )
    hyper = config.hyper
    try:
        changed = type(hyper).model_validate(merge_fields(hyper.model_dump(), dict(changes)))
    except ValidationError as error:
        problem = error.errors()[0]
        key = str(problem["loc"][0]) if problem["loc"] else "?"
        raise HyperparameterError(
            f"hyperparameter {key}={changes.get(key)!r} for {config.name}: {problem['msg']}"
        ) from None
    for key in changes:
        value = getattr(changed, key)
        if isinstance(value, float) and not math.isfinite(value):
            raise HyperparameterError(f"hyperparameter {key}={value!r} for {config.name}: must be finite")
    try:
        # Validated whole again: the config's own rules relate hyperparameters to its other sections.
        return TrackerConfig.model_validate({**config.model_dump(), "hyper": changed.model_dump()})
    except ValidationError as error:
        raise HyperparameterError(f"{config.name}: {error.errors()[0]['msg']}") from None
