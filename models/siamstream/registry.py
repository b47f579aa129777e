"""Registry of named trackers: `@register_tracker` on a function returning a `TrackerConfig`."""

from __future__ import annotations

from collections.abc import Callable

from siamstream.config import TrackerConfig

_FACTORIES: dict[str, Callable[[], TrackerConfig]] = {}


def register_tracker(factory: Callable[[], TrackerConfig]) -> Callable[[], TrackerConfig]:
    """Register a config factory under the function's name (which must equal the config's name)."""
    name = factory.__name__
    if name in _FACTORIES:
        raise ValueError(f"tracker {name!r} is registered twice")
    _FACTORIES[name] = factory
    return factory


def _load_builtin() -> None:
    # Imported for its @register_tracker side effects; deferred to avoid a cycle with this module.
    import siamstream.trackers  # noqa: F401


def list_trackers() -> list[str]:
    """Names of all registered trackers, sorted."""
    _load_builtin()
    return sorted(_FACTORIES)


def get_config(name: str) -> TrackerConfig:
    """The default config of a registered tracker; raises KeyError naming the known trackers."""
    _load_builtin()
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise KeyError(f"unknown tracker {name!r}; known: {', '.join(sorted(_FACTORIES))}") from None
    config = factory()
    if config.name != name:
        raise ValueError(f"tracker factory {name!r} returned a config named {config.name!r}")
    return config
