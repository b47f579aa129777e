"""Built-in trackers; each module registers its configs on import."""

from siamstream.trackers import baselines  # noqa: F401
