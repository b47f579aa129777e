"""Per-session overrides of a tracker's defaults, bounded and validated before they touch a config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from siamstream.config import TrackerConfig

from .errors import InvalidArgument

# Post-processing hyperparameters a session may override; not every family has every one.
HYPER_OVERRIDES = ("penalty_k", "window_influence", "lr")


class TrackOptions(BaseModel):
    """Overrides requested by a client; `None` keeps the tracker package's value."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    penalty_k: float | None = Field(default=None, ge=0.0, le=1.0, description="Scale/aspect change penalty.")
    window_influence: float | None = Field(default=None, ge=0.0, le=1.0, description="Cosine window weight.")
    lr: float | None = Field(default=None, ge=0.0, le=1.0, description="Size smoothing rate.")
    template_update: bool | None = Field(default=None, description="Gated moving-average template update.")
    tracking_threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="Score of TRACKING.")
    lost_threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="Score of a failed frame.")
    lost_after_frames: int | None = Field(default=None, ge=1, le=1000, description="Failed frames to LOST.")
    one_more_search: bool | None = Field(default=None, description="Search a low-scoring frame again.")
    adaptive_region: bool | None = Field(default=None, description="Grow the search region on low scores.")
    long_term: bool | None = Field(default=None, description="Search a larger region while LOST.")

    @classmethod
    def parse(cls, values: dict[str, Any]) -> TrackOptions:
        """Validate client values; out-of-range or unknown options are `InvalidArgument`."""
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise InvalidArgument(f"invalid options: {_describe(error)}") from None


def apply_options(config: TrackerConfig, options: TrackOptions) -> TrackerConfig:
    """The tracker's config with `options` applied, validated as a whole."""
    data = config.model_dump()
    for name in HYPER_OVERRIDES:
        value = getattr(options, name)
        if value is None:
            continue
        if name not in data["hyper"]:
            raise InvalidArgument(
                f"option {name} does not apply to {config.name} ({config.family.value} family)"
            )
        data["hyper"][name] = value
    status = data["status"]
    if options.tracking_threshold is not None:
        status["tracking_above"] = options.tracking_threshold
    if options.lost_threshold is not None:
        status["lost_below"] = options.lost_threshold
    if options.lost_after_frames is not None:
        status["lost_after"] = options.lost_after_frames
    # StatusConfig holds this invariant too; checked here first so that the error names the RPC's fields.
    if status["lost_below"] > status["tracking_above"]:
        lost, tracking = status["lost_below"], status["tracking_above"]
        raise InvalidArgument(f"lost_threshold {lost} must be at most tracking_threshold {tracking}")
    if options.template_update is not None:
        data["template_update"]["enabled"] = options.template_update
    if options.one_more_search is not None:
        data["search"]["one_more_search"] = options.one_more_search
    if options.adaptive_region is not None:
        data["search"]["adaptive_region"] = options.adaptive_region
    if options.long_term is not None:
        # Dumped configs leave long-term mode out while it is off (`TrackerConfig`): its section is rebuilt.
        data["long_term"] = config.long_term.model_copy(update={"enabled": options.long_term}).model_dump()
    try:
        return TrackerConfig.model_validate(data)
    except ValidationError as error:
        raise InvalidArgument(f"invalid options for {config.name}: {_describe(error)}") from None


def stored_options(config: TrackerConfig, options: TrackOptions) -> TrackOptions:
    """`options` as a session record keeps them: an override of an option added this release (`long_term`)
    that only repeats `config`'s value is dropped, so a session that asks for its package's default writes
    the record of before, which a replica of the previous release (refusing unknown options) still reads
    mid-rollout. The session's config is the same either way."""
    if options.long_term == config.long_term.enabled:
        return options.model_copy(update={"long_term": None})
    return options


def effective_options(config: TrackerConfig) -> TrackOptions:
    """The values in effect for a session running `config` (None where the family has no such value)."""
    return TrackOptions(
        penalty_k=getattr(config.hyper, "penalty_k", None),
        window_influence=config.hyper.window_influence,
        lr=getattr(config.hyper, "lr", None),
        template_update=config.template_update.enabled,
        tracking_threshold=config.status.tracking_above,
        lost_threshold=config.status.lost_below,
        lost_after_frames=config.status.lost_after,
        one_more_search=config.search.one_more_search,
        adaptive_region=config.search.adaptive_region,
        long_term=config.long_term.enabled,
    )


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in error.errors())
