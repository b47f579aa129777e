"""Several targets in one frame stream, each tracked as `OfflineTracker` tracks one, with the network
stages batched over the targets: one template call at init and, per frame, one search call (and one
template-update call when targets update) for all targets whose crops have the same side.

Targets are independent: each has its own state and template embedding, and gets the boxes it would get
tracked alone (the stages compute row b from row b only). Crops of different sides (SiamMargin's adaptive
region, SiamBAN-ACM's fast-motion crop, the lost search's larger crops of a LOST target in long-term mode)
cannot share a batch; each side then gets its own call.

`start_targets` and `track_targets` are the per-frame plan of both in-process trackers: `OfflineTracker`
is their one-target use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from siamstream.config import TrackerConfig
from siamstream.tracking.search_options import SearchPass, better_search, second_search_origin
from siamstream.tracking.stage_runner import StageRunner, TemplateUpdater
from siamstream.tracking.state import TrackerState, TrackResult, TrackStatus
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.tracking.template_update import TemplateUpdateRequest, plan_template_update

# What a frame leaves of each target, in target order: its state, its template embedding float32 [1, D]
# and the frame's result.
Tracked = tuple[list[TrackerState], list[np.ndarray], list[TrackResult]]


def same_shape_groups(shapes: Sequence[tuple[int, ...]]) -> list[list[int]]:
    """Indices of `shapes` grouped by equal shape, groups in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(index)
    return list(groups.values())


def start_targets(
    config: TrackerConfig, runner: StageRunner, frame: np.ndarray, boxes_xywh: Sequence[Sequence[float]]
) -> Tracked:
    """Start one target per box (xywh, image px) on `frame` with one template call; each result echoes
    its box with no score."""
    if not boxes_xywh:
        raise ValueError("init needs at least one box")
    starts = [init_track(config, frame, box) for box in boxes_xywh]
    crops = np.concatenate([request.crop for _, request in starts])
    box_priors = np.concatenate([request.box_prior for _, request in starts])
    embeddings = np.asarray(runner.template(crops, box_priors), dtype=np.float32)
    results = []
    for box in boxes_xywh:
        x, y, w, h = (float(value) for value in box)
        results.append(TrackResult(frame_index=0, bbox=(x, y, w, h), score=None, status=TrackStatus.TRACKING))
    states = [state for state, _ in starts]
    return states, [embeddings[row : row + 1] for row in range(len(starts))], results


def track_targets(
    config: TrackerConfig,
    runner: StageRunner,
    frame: np.ndarray,
    states: Sequence[TrackerState],
    embeddings: Sequence[np.ndarray],
) -> Tracked:
    """Locate every target in the next frame: its search (and its second search, `search_options`), the
    template update it plans (`template_update`), the stage calls batched over the targets."""
    passes = _search(config, runner, frame, list(embeddings), list(states))
    again = [
        (target, origin)
        for target, searched in enumerate(passes)
        if (origin := second_search_origin(config, states[target], searched.state)) is not None
    ]
    if again:
        targets = [target for target, _ in again]
        origins = [origin for _, origin in again]
        seconds = _search(config, runner, frame, [embeddings[target] for target in targets], origins)
        for target, second in zip(targets, seconds, strict=True):
            passes[target] = better_search(passes[target], second)
    planned = [
        plan_template_update(config, searched.origin, searched.request, searched.state, searched.outputs)
        for searched in passes
    ]
    updates = {target: update for target, (_, update) in enumerate(planned) if update is not None}
    updated = _update_templates(config, runner, list(embeddings), updates)
    return [state for state, _ in planned], updated, [searched.result for searched in passes]


def _search(
    config: TrackerConfig,
    runner: StageRunner,
    frame: np.ndarray,
    embeddings: list[np.ndarray],
    origins: list[TrackerState],
) -> list[SearchPass]:
    """Search `frame` from each origin state with its template embedding, one search call per crop side."""
    requests = [prepare_search(config, origin, frame) for origin in origins]
    passes: dict[int, SearchPass] = {}
    for group in same_shape_groups([request.crops.shape[1:] for request in requests]):
        # SiamFC's scale crops all search the one template: its embedding row is repeated per crop.
        counts = [requests[i].crops.shape[0] for i in group]
        batch = np.concatenate(
            [np.repeat(embeddings[i], count, axis=0) for i, count in zip(group, counts, strict=True)]
        )
        crops = np.concatenate([requests[i].crops for i in group])
        outputs = tuple(runner.search(batch, crops))
        ends = np.cumsum(counts)
        for i, end, count in zip(group, ends, counts, strict=True):
            rows = tuple(output[end - count : end] for output in outputs)
            state, result = finish_search(config, origins[i], requests[i], rows)
            passes[i] = SearchPass(origins[i], requests[i], rows, state, result)
    return [passes[i] for i in range(len(origins))]


def _update_templates(
    config: TrackerConfig,
    runner: StageRunner,
    embeddings: list[np.ndarray],
    updates: dict[int, TemplateUpdateRequest],
) -> list[np.ndarray]:
    """The embeddings with the planned updates blended in, one update call per feature-map size."""
    if not updates:
        return embeddings
    if not isinstance(runner, TemplateUpdater):
        raise ValueError(f"tracker {config.name!r} updates its template: the runner needs update()")
    targets = list(updates)
    for group in same_shape_groups([updates[target].search_features.shape for target in targets]):
        members = [targets[i] for i in group]
        blended = runner.update(
            np.concatenate([embeddings[target] for target in members]),
            np.concatenate([updates[target].search_features for target in members]),
            np.concatenate([updates[target].roi for target in members]),
            np.concatenate([updates[target].rate for target in members]),
        )
        blended = np.asarray(blended, dtype=np.float32)
        for row, target in enumerate(members):
            embeddings[target] = blended[row : row + 1]
    return embeddings


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
        self._states, self._embeddings, results = start_targets(self.config, self.runner, frame, boxes_xywh)
        return results

    def track(self, frame: np.ndarray) -> list[TrackResult]:
        """Locate every target in the next frame; results in the order of the init boxes."""
        if not self._states:
            raise RuntimeError("track() called before init()")
        self._states, self._embeddings, results = track_targets(
            self.config, self.runner, frame, self._states, self._embeddings
        )
        return results
