"""Built-in trackers; each module registers its configs on import."""

from siamstream.trackers import (
    baselines,  # noqa: F401
    seeds_acm_margin,  # noqa: F401
    seeds_dcf_can,  # noqa: F401
    small,  # noqa: F401
)
