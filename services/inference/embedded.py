"""In-process TorchScript backend: the embedded default (CPU or CUDA), with micro-batching.

Both stages of every tracker package, and `update.pt` of update-capable ones, are `torch.jit.load`ed
once. All model runs go through ONE worker thread, so the event loop never blocks and torch's own
intra-op threads are not oversubscribed by concurrent calls; concurrent calls of the same tracker and
stage are gathered into one batched run (see `batching.MicroBatcher`), template updates included. The
search stage of an update-capable package always computes the search features; they are dropped unless
the caller asks for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from siamstream.package import TrackerPackage

from .backend import BackendUnavailable, InferenceError, SearchOutputs, UnknownTracker
from .batching import BatchObserver, MicroBatcher, Tensors

TEMPLATE_STAGE = "template"
SEARCH_STAGE = "search"
UPDATE_STAGE = "update"


@dataclass(frozen=True)
class _TensorSpec:
    name: str
    dtype: np.dtype
    trailing_shape: tuple[int | None, ...]  # None: any size (the search features' map, set by the package)

    def check(self, array: np.ndarray) -> None:
        if not isinstance(array, np.ndarray) or array.dtype != self.dtype:
            raise InferenceError(f"{self.name} must be a numpy {self.dtype} array")
        if array.ndim != len(self.trailing_shape) + 1 or any(
            want is not None and got != want
            for got, want in zip(array.shape[1:], self.trailing_shape, strict=True)
        ):
            expected = ", ".join("?" if size is None else str(size) for size in self.trailing_shape)
            raise InferenceError(f"{self.name} has shape {array.shape}, expected [B, {expected}]")


@dataclass
class _Stage:
    module: torch.jit.ScriptModule
    inputs: tuple[_TensorSpec, ...]
    output_count: int
    batcher: MicroBatcher


class EmbeddedBackend:
    """Runs tracker packages in this process.

    `max_batch_rows` bounds the rows of one gathered run; `max_wait_ms` is how long the first queued call
    waits for company (0 runs whatever is queued at once). `on_batch(tracker, stage, rows, calls)` is
    called after every run.
    """

    def __init__(
        self,
        packages: Iterable[TrackerPackage],
        *,
        device: str = "cpu",
        max_batch_rows: int = 16,
        max_wait_ms: float = 1.0,
        on_batch: BatchObserver | None = None,
    ):
        self._device = torch.device(device)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siamstream-inference")
        self._on_batch = on_batch
        self._stages: dict[tuple[str, str], _Stage] = {}
        self._closed = False
        for package in packages:
            tracker = package.meta.tracker
            z, x, d = (
                package.config.crop.exemplar_size,
                package.config.crop.instance_size,
                package.meta.embedding_dim,
            )
            specs = {
                TEMPLATE_STAGE: (
                    _TensorSpec("crop_z", np.dtype(np.uint8), (3, z, z)),
                    _TensorSpec("box_prior", np.dtype(np.float32), (2,)),
                ),
                SEARCH_STAGE: (
                    _TensorSpec("template_embedding", np.dtype(np.float32), (d,)),
                    _TensorSpec("crop_x", np.dtype(np.uint8), (3, x, x)),
                ),
                UPDATE_STAGE: (
                    _TensorSpec("template_embedding", np.dtype(np.float32), (d,)),
                    _TensorSpec("search_features", np.dtype(np.float32), (None, None, None)),
                    _TensorSpec("roi", np.dtype(np.float32), (4,)),
                    _TensorSpec("rate", np.dtype(np.float32), ()),
                ),
            }
            files = {TEMPLATE_STAGE: package.template_path, SEARCH_STAGE: package.search_path}
            if package.meta.template_update:
                files[UPDATE_STAGE] = package.update_path
            output_counts = {
                TEMPLATE_STAGE: 1,
                SEARCH_STAGE: len(package.meta.search_outputs),
                UPDATE_STAGE: 1,
            }
            for stage, path in files.items():
                module = torch.jit.load(str(path), map_location=self._device).eval()
                self._stages[tracker, stage] = _Stage(
                    module=module,
                    inputs=specs[stage],
                    output_count=output_counts[stage],
                    batcher=self._make_batcher(tracker, stage, module, max_batch_rows, max_wait_ms),
                )

    @property
    def trackers(self) -> list[str]:
        return sorted({tracker for tracker, _ in self._stages})

    async def template(self, tracker: str, crop_z: np.ndarray, box_prior: np.ndarray) -> np.ndarray:
        (embedding,) = await self._call(tracker, TEMPLATE_STAGE, (crop_z, box_prior))
        return embedding

    async def search(
        self,
        tracker: str,
        template_embedding: np.ndarray,
        crop_x: np.ndarray,
        *,
        search_features: bool = False,
    ) -> SearchOutputs:
        if search_features:
            self._require_update_stage(tracker)
        outputs = await self._call(tracker, SEARCH_STAGE, (template_embedding, crop_x))
        if (tracker, UPDATE_STAGE) in self._stages and not search_features:
            return outputs[:-1]  # the search features come last (package.json `search_outputs`)
        return outputs

    async def update(
        self,
        tracker: str,
        template_embedding: np.ndarray,
        search_features: np.ndarray,
        roi: np.ndarray,
        rate: np.ndarray,
    ) -> np.ndarray:
        self._require_update_stage(tracker)
        inputs = (template_embedding, search_features, roi, rate)
        (embedding,) = await self._call(tracker, UPDATE_STAGE, inputs)
        return embedding

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
        if (tracker, SEARCH_STAGE) in self._stages and (tracker, UPDATE_STAGE) not in self._stages:
            raise InferenceError(f"the {tracker} package was exported without the template update stage")

    async def _call(self, tracker: str, stage_name: str, inputs: Tensors) -> Tensors:
        if self._closed:
            raise BackendUnavailable("inference backend is closed")
        stage = self._stages.get((tracker, stage_name))
        if stage is None:
            raise UnknownTracker(f"no tracker package loaded for {tracker!r}")
        for spec, array in zip(stage.inputs, inputs, strict=True):
            spec.check(array)
        outputs = await stage.batcher.submit(inputs)
        if len(outputs) != stage.output_count:
            raise InferenceError(
                f"{tracker} {stage_name} returned {len(outputs)} outputs, expected {stage.output_count}"
            )
        return outputs

    def _make_batcher(
        self, tracker: str, stage: str, module: torch.jit.ScriptModule, max_rows: int, max_wait_ms: float
    ) -> MicroBatcher:
        async def run(inputs: Tensors) -> Tensors:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._forward, module, inputs)

        def observe(rows: int, calls: int) -> None:
            if self._on_batch is not None:
                self._on_batch(tracker, stage, rows, calls)

        return MicroBatcher(run, max_rows=max_rows, max_wait_s=max_wait_ms / 1000.0, on_run=observe)

    def _forward(self, module: torch.jit.ScriptModule, inputs: Tensors) -> Tensors:
        """Runs in the worker thread: numpy in, numpy out."""
        with torch.inference_mode():
            outputs = module(*[torch.from_numpy(array).to(self._device) for array in inputs])
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return tuple(output.cpu().numpy() for output in outputs)
