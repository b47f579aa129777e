"""Wall-clock time spent on one frame, stage by stage, in milliseconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

STAGES = ("decode", "crop", "inference", "postprocess", "store")


@dataclass
class StageTimings:
    """Milliseconds per stage; a stage entered several times (a retried write) accumulates."""

    decode: float = 0.0
    crop: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0
    store: float = 0.0
    total: float = 0.0
    _started: float = field(default_factory=time.perf_counter, repr=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the time spent inside the block to stage `name`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, name, getattr(self, name) + (time.perf_counter() - started) * 1000.0)

    def finish(self) -> StageTimings:
        """Set `total` to the time since construction and return self."""
        self.total = (time.perf_counter() - self._started) * 1000.0
        return self

    def as_dict(self) -> dict[str, float]:
        """Stage name -> milliseconds, `total` included."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
