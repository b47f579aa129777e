"""In-process backend: the embedded default (CPU or CUDA), with micro-batching.

Every tracker package is loaded by the offline `PackageRunner` (its TorchScript stages loaded once, or
its compiled stages where the package has them and they fit this machine; the log says which), so the
service runs the very code the offline tracker runs. All model runs go through ONE worker thread,
so the event loop never blocks and torch's own intra-op threads are not oversubscribed by concurrent
calls; concurrent calls of the same tracker and stage are gathered into one batched run (see
`batching.MicroBatcher`), template updates included. A search stage takes every crop side its package's
tracker may search (`search_options.search_sides`: the adaptive region's grown crops, SiamBAN-ACM's
fast-motion crop); calls of different sides run in separate batches. The search stage of an
update-capable package always computes the search features; they are dropped unless the caller asks for
them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from siamstream.package import TrackerPackage
from siamstream.runner import PackageRunner
from siamstream.tracking.search_options import search_sides
from siamstream_services.settings import ServiceSettings

from .backend import BackendUnavailable, InferenceBackend, InferenceError, Stage, UnknownTracker
from .batching import BatchObserver, MicroBatcher, Tensors

log = logging.getLogger(__name__)

StageRun = Callable[..., Tensors]
"""One stage of a loaded package on numpy inputs, run in the worker thread."""

# A backend built without them batches as the service does by default: the settings are their one source.
DEFAULT_MAX_BATCH_ROWS: int = ServiceSettings.model_fields["batch_max_size"].default
DEFAULT_MAX_WAIT_MS: float = ServiceSettings.model_fields["batch_max_wait_ms"].default


@dataclass(frozen=True)
class _TensorSpec:
    name: str
    dtype: np.dtype
    # The shapes accepted after the batch dim: one, or one per search crop side the package's tracker may
    # use (`search_sides`); None: any size (the search features' map, set by the package and the side).
    trailing_shapes: tuple[tuple[int | None, ...], ...]

    def check(self, array: object) -> None:
        if not isinstance(array, np.ndarray) or array.dtype != self.dtype:
            raise InferenceError(f"{self.name} must be a numpy {self.dtype} array")
        if not any(_fits(array.shape[1:], shape) for shape in self.trailing_shapes):
            expected = " or ".join(
                "[B, " + ", ".join("?" if size is None else str(size) for size in shape) + "]"
                for shape in self.trailing_shapes
            )
            raise InferenceError(f"{self.name} has shape {array.shape}, expected {expected}")


def _fits(trailing: tuple[int, ...], shape: tuple[int | None, ...]) -> bool:
    return len(trailing) == len(shape) and all(
        want is None or got == want for got, want in zip(trailing, shape, strict=True)
    )


@dataclass
class _Stage:
    inputs: tuple[_TensorSpec, ...]
    output_count: int
    batcher: MicroBatcher


class EmbeddedBackend(InferenceBackend):
    """Runs tracker packages in this process.

    `max_batch_rows` bounds the rows of one gathered run; `max_wait_ms` is how long the first queued call
    waits for company once calls have come together (0 runs whatever is queued at once); both default to
    the service's defaults (`batch_max_size`, `batch_max_wait_ms`). `on_batch(tracker, stage, rows,
    calls)` is called after every run.
    """

    def __init__(
        self,
        packages: Iterable[TrackerPackage],
        *,
        device: str = "cpu",
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        on_batch: BatchObserver | None = None,
    ):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siamstream-inference")
        self._on_batch = on_batch
        self._stages: dict[tuple[str, Stage], _Stage] = {}
        self._closed = False
        for package in packages:
            tracker = package.meta.tracker
            z, d = package.config.crop.exemplar_size, package.meta.embedding_dim
            sides = search_sides(package.config)
            specs = {
                Stage.TEMPLATE: (
                    _TensorSpec("crop_z", np.dtype(np.uint8), ((3, z, z),)),
                    _TensorSpec("box_prior", np.dtype(np.float32), ((2,),)),
                ),
                Stage.SEARCH: (
                    _TensorSpec("template_embedding", np.dtype(np.float32), ((d,),)),
                    _TensorSpec("crop_x", np.dtype(np.uint8), tuple((3, x, x) for x in sides)),
                ),
                Stage.UPDATE: (
                    _TensorSpec("template_embedding", np.dtype(np.float32), ((d,),)),
                    _TensorSpec("search_features", np.dtype(np.float32), ((None, None, None),)),
                    _TensorSpec("roi", np.dtype(np.float32), ((4,),)),
                    _TensorSpec("rate", np.dtype(np.float32), ((),)),
                ),
            }
            output_counts = {
                Stage.TEMPLATE: 1,
                Stage.SEARCH: len(package.meta.search_outputs),
                Stage.UPDATE: 1,
            }
            runner = PackageRunner(package, device)
            log.info("tracker %s: template and search stages run as %s", tracker, runner.stage_form)
            for stage, run in _stage_runs(runner).items():
                self._stages[tracker, stage] = _Stage(
                    inputs=specs[stage],
                    output_count=output_counts[stage],
                    batcher=self._make_batcher(tracker, stage, run, max_batch_rows, max_wait_ms),
                )

    @property
    def trackers(self) -> list[str]:
        return sorted({tracker for tracker, _ in self._stages})

    async def run_stage(
        self, tracker: str, stage: Stage, inputs: Tensors, *, search_features: bool = False
    ) -> Tensors:
        if search_features or stage == Stage.UPDATE:
            self._require_update_stage(tracker)
        outputs = await self._call(tracker, stage, inputs)
        if stage == Stage.SEARCH and (tracker, Stage.UPDATE) in self._stages and not search_features:
            return outputs[:-1]  # the search features come last (package.json `search_outputs`)
        return outputs

    async def ready(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
        for stage in self._stages.values():
            await stage.batcher.close()
        # A run already in the worker thread finishes on its own; nothing new is accepted.
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _require_update_stage(self, tracker: str) -> None:
        """InferenceError for a loaded package without `update.pt` (an unknown tracker is left to `_call`)."""
        if (tracker, Stage.SEARCH) in self._stages and (tracker, Stage.UPDATE) not in self._stages:
            raise InferenceError(f"the {tracker} package was exported without the template update stage")

    async def _call(self, tracker: str, stage: Stage, inputs: Tensors) -> Tensors:
        if self._closed:
            raise BackendUnavailable("inference backend is closed")
        loaded = self._stages.get((tracker, stage))
        if loaded is None:
            raise UnknownTracker(f"no tracker package loaded for {tracker!r}")
        for spec, array in zip(loaded.inputs, inputs, strict=True):
            spec.check(array)
        outputs = await loaded.batcher.submit(inputs)
        if len(outputs) != loaded.output_count:
            raise InferenceError(
                f"{tracker} {stage} returned {len(outputs)} outputs, expected {loaded.output_count}"
            )
        return outputs

    def _make_batcher(
        self, tracker: str, stage: Stage, stage_run: StageRun, max_rows: int, max_wait_ms: float
    ) -> MicroBatcher:
        async def run(inputs: Tensors) -> Tensors:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, stage_run, *inputs)

        def observe(rows: int, calls: int) -> None:
            if self._on_batch is not None:
                self._on_batch(tracker, stage, rows, calls)

        return MicroBatcher(run, max_rows=max_rows, max_wait_s=max_wait_ms / 1000.0, on_run=observe)


def _stage_runs(runner: PackageRunner) -> dict[Stage, StageRun]:
    """The package's stages as functions of numpy inputs returning a tuple of outputs (the template and
    update stages return their one embedding)."""

    def template(crop_z: np.ndarray, box_prior: np.ndarray) -> Tensors:
        return (runner.template(crop_z, box_prior),)

    def update(*inputs: np.ndarray) -> Tensors:
        return (runner.update(*inputs),)

    runs: dict[Stage, StageRun] = {Stage.TEMPLATE: template, Stage.SEARCH: runner.search}
    if runner.package.meta.template_update:
        runs[Stage.UPDATE] = update
    return runs
