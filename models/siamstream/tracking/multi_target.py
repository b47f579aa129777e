"""Several targets in one frame stream, each tracked as `OfflineTracker` tracks one, with the network
stages batched over the targets: one template call at init and, per frame, one search call (and one
template-update call when targets update) for all targets whose crops have the same side.

Targets are independent: each has its own state and template embedding, and gets the boxes it would get
tracked alone (the stages compute row b from row b only). Crops of different sides (SiamMargin's adaptive
region, SiamBAN-ACM's fast-motion crop, the lost search's larger crops of a LOST target in long-term mode)
cannot share a batch; each side then gets its own call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from siamstream.config import TrackerConfig
from siamstream.tracking.offline import StageRunner, TemplateUpdater
from siamstream.tracking.search_options import SearchPass, better_search, second_search_origin
from siamstream.tracking.state import TrackerState, TrackResult, TrackStatus
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.tracking.template_update import TemplateUpdateRequest, plan_template_update


def same_shape_groups(shapes: Sequence[tuple[int, ...]]) -> list[list[int]]:
    """Indices of `shapes` grouped by equal shape, groups in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(index)
    return list(groups.values())


class MultiTargetTracker:
    """Tracks targets started together on one frame through the following frames of the same stream."""

    def __init__(self, config: TrackerConfig, runner: StageRunner) -> None:
        self.config = config
        self.runner = runner
        self._states: list[TrackerState] = []
        self._embeddings: list[np.ndarray] = []

    @property
    def states(self) -> list[TrackerState]:
        """The current state of each target, in the order of the init boxes (empty before `init`)."""
        return list(self._states)

    def init(self, frame: np.ndarray, boxes_xywh: Sequence[Sequence[float]]) -> list[TrackResult]:
        """Start one target per box (xywh, image px) on `frame`; each result echoes its box, no score."""
        if not boxes_xywh:
            raise ValueError("init needs at least one box")
        starts = [init_track(self.config, frame, box) for box in boxes_xywh]
        crops = np.concatenate([request.crop for _, request in starts])
        box_priors = np.concatenate([request.box_prior for _, request in starts])
        embeddings = np.asarray(self.runner.template(crops, box_priors), dtype=np.float32)
        self._states = [state for state, _ in starts]
        self._embeddings = [embeddings[row : row + 1] for row in range(len(starts))]
        return [
            TrackResult(
                frame_index=0,
                bbox=tuple(float(value) for value in box),
                score=None,
                status=TrackStatus.TRACKING,
            )
            for box in boxes_xywh
        ]

    def track(self, frame: np.ndarray) -> list[TrackResult]:
        """Locate every target in the next frame; results in the order of the init boxes."""
        if not self._states:
            raise RuntimeError("track() called before init()")
        passes = self._search(frame, list(range(len(self._states))), self._states)
        again = [
            (target, origin)
            for target, searched in enumerate(passes)
            if (origin := second_search_origin(self.config, self._states[target], searched.state)) is not None
        ]
        if again:
            targets = [target for target, _ in again]
            seconds = self._search(frame, targets, [origin for _, origin in again])
            for target, second in zip(targets, seconds, strict=True):
                passes[target] = better_search(passes[target], second)
        planned = [
            plan_template_update(
                self.config, searched.origin, searched.request, searched.state, searched.outputs
            )
            for searched in passes
        ]
        self._update_templates(
            {target: update for target, (_, update) in enumerate(planned) if update is not None}
        )
        self._states = [state for state, _ in planned]
        return [searched.result for searched in passes]

    def _search(self, frame: np.ndarray, targets: list[int], origins: list[TrackerState]) -> list[SearchPass]:
        """Search `frame` for each of `targets` from its origin state, one search call per crop side."""
        requests = [prepare_search(self.config, origin, frame) for origin in origins]
        passes: dict[int, SearchPass] = {}
        for group in same_shape_groups([request.crops.shape[1:] for request in requests]):
            counts = [requests[i].crops.shape[0] for i in group]  # SiamFC: one crop per scale
            embeddings = np.concatenate(
                [
                    np.repeat(self._embeddings[targets[i]], count, axis=0)
                    for i, count in zip(group, counts, strict=True)
                ]
            )
            crops = np.concatenate([requests[i].crops for i in group])
            outputs = tuple(self.runner.search(embeddings, crops))
            ends = np.cumsum(counts)
            for i, end, count in zip(group, ends, counts, strict=True):
                rows = tuple(output[end - count : end] for output in outputs)
                state, result = finish_search(self.config, origins[i], requests[i], rows)
                passes[i] = SearchPass(origins[i], requests[i], rows, state, result)
        return [passes[i] for i in range(len(targets))]

    def _update_templates(self, updates: dict[int, TemplateUpdateRequest]) -> None:
        """Blend the planned updates into the targets' templates, one update call per feature-map size."""
        if not updates:
            return
        if not hasattr(self.runner, "update"):
            raise ValueError(f"tracker {self.config.name!r} updates its template: the runner needs update()")
        updater: TemplateUpdater = self.runner  # type: ignore[assignment]
        targets = list(updates)
        for group in same_shape_groups([updates[target].search_features.shape for target in targets]):
            members = [targets[i] for i in group]
            blended = updater.update(
                np.concatenate([self._embeddings[target] for target in members]),
                np.concatenate([updates[target].search_features for target in members]),
                np.concatenate([updates[target].roi for target in members]),
                np.concatenate([updates[target].rate for target in members]),
            )
            blended = np.asarray(blended, dtype=np.float32)
            for row, target in enumerate(members):
                self._embeddings[target] = blended[row : row + 1]
