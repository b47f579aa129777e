"""A tracker for whole sequences (CLI, evaluation) built on the shared step functions and two stages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from siamstream.config import TrackerConfig
from siamstream.tracking.search_options import SearchPass, better_search, second_search_origin
from siamstream.tracking.state import TrackerState, TrackResult, TrackStatus
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.tracking.template_update import plan_template_update


class StageRunner(Protocol):
    """The two network stages of Contract 1, batch first."""

    def template(self, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        """uint8 [B, 3, Z, Z] crops and float32 [B, 2] box priors -> float32 [B, D] template embeddings."""
        ...

    def search(self, template_embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
        """float32 [B, D] embeddings and uint8 [B, 3, X, X] crops -> the family's head outputs [B, ...]."""
        ...


class TemplateUpdater(Protocol):
    """The template update stage of an update-capable package (`update.pt`)."""

    def update(
        self, template_embedding: np.ndarray, search_features: np.ndarray, roi: np.ndarray, rate: np.ndarray
    ) -> np.ndarray:
        """float32 [B, D] embeddings, [B, L*C, F, F] search features, [B, 4] regions (search-crop px from
        the crop centre) and [B] rates -> the blended float32 [B, D] embeddings."""
        ...


class OfflineTracker:
    """Tracks one target through frames in this process; same boxes as the service for the same frames."""

    def __init__(self, config: TrackerConfig, runner: StageRunner) -> None:
        self.config = config
        self.runner = runner
        self._state: TrackerState | None = None
        self._embedding: np.ndarray | None = None

    @property
    def state(self) -> TrackerState | None:
        """The current tracker state (None before `init`)."""
        return self._state

    def init(self, frame: np.ndarray, box_xywh: Sequence[float]) -> TrackResult:
        """Start on `frame` at `box_xywh` (image px); the result echoes the box with no score."""
        state, request = init_track(self.config, frame, box_xywh)
        self._embedding = np.asarray(self.runner.template(request.crop, request.box_prior), dtype=np.float32)
        self._state = state
        return TrackResult(
            frame_index=0,
            bbox=tuple(float(v) for v in box_xywh),
            score=None,
            status=TrackStatus.TRACKING,
        )

    def track(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in the next frame."""
        if self._state is None or self._embedding is None:
            raise RuntimeError("track() called before init()")
        searched = self._search(self._embedding, self._state, frame)
        origin = second_search_origin(self.config, self._state, searched.state)
        if origin is not None:
            searched = better_search(searched, self._search(self._embedding, origin, frame))
        state, update = plan_template_update(
            self.config, searched.origin, searched.request, searched.state, searched.outputs
        )
        if update is not None:
            if not hasattr(self.runner, "update"):
                raise ValueError(
                    f"tracker {self.config.name!r} updates its template: the runner needs update()"
                )
            updater: TemplateUpdater = self.runner  # type: ignore[assignment]
            self._embedding = np.asarray(
                updater.update(self._embedding, update.search_features, update.roi, update.rate),
                dtype=np.float32,
            )
        self._state = state
        return searched.result

    def _search(self, embedding: np.ndarray, origin: TrackerState, frame: np.ndarray) -> SearchPass:
        """Search `frame` around `origin`'s target with the template `embedding` [1, D]."""
        request = prepare_search(self.config, origin, frame)
        # SiamFC's scale crops all search the one template: repeat its embedding row per crop.
        embedding = np.repeat(embedding, request.crops.shape[0], axis=0)
        outputs = tuple(self.runner.search(embedding, request.crops))
        state, result = finish_search(self.config, origin, request, outputs)
        return SearchPass(origin, request, outputs, state, result)

    def track_sequence(self, frames: Iterable[np.ndarray], init_box: Sequence[float]) -> list[TrackResult]:
        """Init on the first frame at `init_box`, track through the rest; one result per frame."""
        results: list[TrackResult] = []
        for frame in frames:
            results.append(self.init(frame, init_box) if not results else self.track(frame))
        return results
