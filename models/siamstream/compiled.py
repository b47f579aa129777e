"""Ahead-of-time compiled stages: AOTInductor libraries beside a tracker package's TorchScript files.

A package exported with batch-size buckets also holds `compiled/`: per bucket B the template stage, and
the search stage once per search crop side its tracker may use (`search_sides`), each exported by
`torch.export` for exactly B rows and compiled by AOTInductor into a `.pt2` archive holding a shared
library with the weights frozen in. `compiled.json` names the buckets and sides, the torch version that
built them, the checksums of the TorchScript stages they were compiled beside, and the instruction-set
flags of the CPU that built them: inductor compiles for that CPU (`-march=native`), so its code may use
any instruction the builder has and fault on a CPU without it.

At run time a runner takes the compiled stages only where they fit (`compiled_misfit`): the same torch
version, a CPU with every flag of the builder's, a CPU device, and the very TorchScript stages they were
compiled with (a package exported again over an old one never runs stale compiled code). Otherwise, and
when `compiled/` cannot be read, it runs the TorchScript files, which stay the portable form and the one
Triton serves. A call of B rows runs in the buckets that take the least time by the times recorded when
they were compiled (`bucket_plan`: 5 rows with buckets 1, 4, 16 as 4 + 1), a bucket larger than the rows
left padded with copies of their last row whose outputs are dropped; a call in other dtypes than the
stages were compiled for (float crops) runs TorchScript. The template update stage (`update.pt`) is not
compiled.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, field_validator
from torch import Tensor, nn

from siamstream.config import Precision, TrackerConfig
from siamstream.machine import cpu_flags, read_cpuinfo
from siamstream.nn.network import SiameseNetwork
from siamstream.nn.stages import SearchStage, TemplateStage
from siamstream.nn.template_update import FeatureSearchStage
from siamstream.package import TrackerPackage, WeightsOrigin, export_package
from siamstream.tracking.search_options import search_sides

log = logging.getLogger(__name__)

COMPILED_DIR = "compiled"
COMPILED_META = "compiled.json"
COMPILED_FORMAT = 1
CompiledModel = Callable[..., Tensor | Sequence[Tensor]]
# Calls of each compiled file timed when it is built, for `bucket_plan`'s weights.
WARMUP_CALLS = 2
TIMED_CALLS = 5


class CompiledMeta(BaseModel):
    """Contents of compiled/compiled.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = COMPILED_FORMAT
    torch_version: str
    cpu_capability: str  # for people: torch.backends.cpu.get_cpu_capability() of the builder
    cpu_flags: tuple[str, ...]
    precision: Precision
    buckets: tuple[int, ...]
    search_sides: tuple[int, ...]
    stages_sha256: str  # of the package's template.pt and search.pt, as compiled beside them
    # Median time of one call of each compiled file (by name) on the builder, ms: what `bucket_plan`
    # weighs runs by. Empty in packages compiled before it was recorded; runs are then weighed by rows.
    call_ms: dict[str, float] = {}

    @field_validator("buckets")
    @classmethod
    def _sorted_buckets(cls, buckets: tuple[int, ...]) -> tuple[int, ...]:
        return check_buckets(buckets)


def template_file(bucket: int) -> str:
    return f"template-b{bucket}.pt2"


def search_file(bucket: int, side: int) -> str:
    return f"search-b{bucket}-x{side}.pt2"


def check_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
    """`buckets` as a sorted tuple; ValueError when empty, repeated or not positive."""
    ordered = tuple(sorted(buckets))
    if not ordered or ordered[0] < 1 or len(set(ordered)) != len(ordered):
        raise ValueError(f"batch-size buckets must be distinct positive row counts, got {list(buckets)}")
    return ordered


def stages_sha256(package: TrackerPackage) -> str:
    """One checksum of a package's TorchScript template and search stages."""
    digest = hashlib.sha256()
    for path in (package.template_path, package.search_path):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def export_with_compiled_stages(
    network: SiameseNetwork,
    config: TrackerConfig,
    out_dir: Path,
    precision: Precision = Precision.FP32,
    source: WeightsOrigin | None = None,
    buckets: Sequence[int] = (),
) -> TrackerPackage:
    """`export_package`, then `compile_stages` for `buckets` when any are given (none: TorchScript alone)."""
    package = export_package(network, config, out_dir, precision, source)
    if buckets:
        compile_stages(network, package, buckets)
    return package


def compile_stages(network: SiameseNetwork, package: TrackerPackage, buckets: Sequence[int]) -> CompiledMeta:
    """Compile the template and search stages of `network`, the network `package` was exported from, per
    bucket (and search side) into the package's `compiled/` (replacing what was there), as its TorchScript
    stages compute (same precision, the search features returned too when its config enables the template
    update), and record one call's time of each compiled file (`CompiledMeta.call_ms`, for `bucket_plan`).
    CPU precisions only: fp16 is for CUDA."""
    ordered = check_buckets(buckets)
    config, precision = package.config, package.meta.precision
    if precision == Precision.FP16:
        raise ValueError("compiled stages are for the CPU, which runs fp32 or bf16, not fp16")
    template = TemplateStage(network, precision)
    search_type = FeatureSearchStage if config.template_update.enabled else SearchStage
    search = search_type(network, precision)
    sides = search_sides(config)
    directory = package.root / COMPILED_DIR
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    exemplar = config.crop.exemplar_size
    examples: dict[str, tuple[Tensor, ...]] = {}
    for bucket in ordered:
        crop_z = torch.zeros(bucket, 3, exemplar, exemplar, dtype=torch.uint8)
        box_prior = torch.ones(bucket, 2)
        examples[template_file(bucket)] = (crop_z, box_prior)
        _compile(template, (crop_z, box_prior), directory / template_file(bucket))
        with torch.no_grad():
            embedding = template(crop_z, box_prior)
        for side in sides:
            crop_x = torch.zeros(bucket, 3, side, side, dtype=torch.uint8)
            examples[search_file(bucket, side)] = (embedding, crop_x)
            _compile(search, (embedding, crop_x), directory / search_file(bucket, side))
    meta = CompiledMeta(
        torch_version=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_flags=tuple(sorted(cpu_flags(read_cpuinfo()))),
        precision=precision,
        buckets=ordered,
        search_sides=sides,
        stages_sha256=stages_sha256(package),
        call_ms={name: _call_ms(_load(directory / name), example) for name, example in examples.items()},
    )
    (directory / COMPILED_META).write_text(meta.model_dump_json(indent=2) + "\n")
    return meta


def _compile(stage: nn.Module, example: tuple[Tensor, ...], path: Path) -> None:
    program = torch.export.export(stage, example)
    # Freezing makes the weights constants of the generated code, as torch.jit.freeze does for the
    # TorchScript files: batch norms folded into the convolutions, and the weights packed once into
    # oneDNN's layout with the following bias, add and ReLU fused into each convolution. Inductor
    # freezes only with autograd off: compiled with it on, every call reordered every weight
    # (ResNet-50: 80 reorders a frame, and no faster than eager).
    with torch.no_grad():
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs={"freezing": True}
        )


def _call_ms(model: CompiledModel, example: tuple[Tensor, ...]) -> float:
    """Median time of one call of `model` on `example`, ms, after warm-up calls."""
    for _ in range(WARMUP_CALLS):
        model(*example)
    times = []
    for _ in range(TIMED_CALLS):
        started = time.perf_counter()
        model(*example)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def compiled_misfit(
    meta: CompiledMeta, *, torch_version: str, flags: set[str], device: torch.device, stages: str
) -> str | None:
    """Why compiled stages described by `meta` cannot run here (`flags`: this CPU's; `stages`: the
    package's `stages_sha256`), or None when they can."""
    if device.type != "cpu":
        return f"they are compiled for the CPU, not {device.type}"
    if meta.torch_version != torch_version:
        return f"they were built with torch {meta.torch_version}, this is torch {torch_version}"
    missing = sorted(set(meta.cpu_flags) - flags)
    if missing:
        return f"they were built on a CPU with {', '.join(missing)}, which this CPU lacks"
    if meta.stages_sha256 != stages:
        return "they were compiled beside other TorchScript stages (the package was exported again)"
    return None


@functools.lru_cache(maxsize=1024)
def bucket_plan(rows: int, costs: tuple[tuple[int, float], ...]) -> tuple[tuple[int, int, int], ...]:
    """How a call of `rows` rows runs: `(start, stop, bucket)` per run, each run's rows `start:stop` padded
    to `bucket` rows. `costs`: `(bucket, cost of one run)` per bucket, ascending.

    The plan takes the least total cost, then the fewest runs (larger buckets first). With the times the
    builder measured per run, a padded bucket is taken only where it beats smaller runs: with 4.8, 15.6
    and 50 ms for buckets 1, 4 and 16, 5 rows run as 4 + 1 (20 ms, not 50), 13 as 16 (not 4+4+4+1, 52).
    """
    # cheapest[n]: (cost, runs, -bucket of the first run) for n rows, by dynamic programming; costs are
    # rounded so that the same runs summed in another order tie.
    cheapest = [(0.0, 0, 0)]
    for n in range(1, rows + 1):
        cheapest.append(
            min(
                (round(cheapest[max(n - b, 0)][0] + cost, 6), cheapest[max(n - b, 0)][1] + 1, -b)
                for b, cost in costs
            )
        )
    plan = []
    start = 0
    while start < rows:
        bucket = -cheapest[rows - start][2]
        stop = min(rows, start + bucket)
        plan.append((start, stop, bucket))
        start = stop
    return tuple(plan)


def run_costs(meta: CompiledMeta, files: Mapping[int, str]) -> tuple[tuple[int, float], ...]:
    """`(bucket, cost)` of the compiled `files` (per bucket) for `bucket_plan`: the times the builder
    recorded, or the bucket's rows where any is missing (packages compiled before they were recorded)."""
    if all(name in meta.call_ms for name in files.values()):
        return tuple((bucket, meta.call_ms[files[bucket]]) for bucket in sorted(files))
    return tuple((bucket, float(bucket)) for bucket in sorted(files))


@dataclass(frozen=True)
class _BucketedStage:
    """One stage (for one search side) compiled per bucket, and what a run of each bucket costs."""

    models: Mapping[int, CompiledModel]
    costs: tuple[tuple[int, float], ...]

    @classmethod
    def load(cls, directory: Path, meta: CompiledMeta, files: Mapping[int, str]) -> _BucketedStage:
        models = {bucket: _load(directory / name) for bucket, name in files.items()}
        return cls(models, run_costs(meta, files))


class CompiledStages:
    """A package's compiled template and search stages, called with tensors like its TorchScript stages."""

    def __init__(self, directory: Path, meta: CompiledMeta) -> None:
        self.meta = meta
        self._template = _BucketedStage.load(directory, meta, {b: template_file(b) for b in meta.buckets})
        self._search = {
            side: _BucketedStage.load(directory, meta, {b: search_file(b, side) for b in meta.buckets})
            for side in meta.search_sides
        }

    def template(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return self._run(self._template, (crop_z, box_prior))[0]

    def serves_template(self, crop_z: Tensor, box_prior: Tensor) -> bool:
        """Whether these inputs are what the template stage was compiled for (uint8 crops, float32 sizes;
        at least one row)."""
        return crop_z.shape[0] > 0 and crop_z.dtype == torch.uint8 and box_prior.dtype == torch.float32

    def serves_search(self, template_embedding: Tensor, crop_x: Tensor) -> bool:
        """Whether these inputs are what a compiled search stage was compiled for (float32 embeddings,
        uint8 crops of a side it was compiled for)."""
        return (
            crop_x.shape[0] > 0
            and template_embedding.dtype == torch.float32
            and crop_x.dtype == torch.uint8
            and crop_x.shape[-1] in self.meta.search_sides
        )

    def search(self, template_embedding: Tensor, crop_x: Tensor) -> tuple[Tensor, ...]:
        return self._run(self._search[crop_x.shape[-1]], (template_embedding, crop_x))

    def _run(self, stage: _BucketedStage, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        runs = []
        for start, stop, bucket in bucket_plan(inputs[0].shape[0], stage.costs):
            rows = stop - start
            chunk = [tensor[start:stop] for tensor in inputs]
            if rows < bucket:
                chunk = [torch.cat([t, t[-1:].expand(bucket - rows, *t.shape[1:])]) for t in chunk]
            outputs = stage.models[bucket](*chunk)
            if isinstance(outputs, Tensor):  # a stage returning one tensor (the template stage)
                outputs = (outputs,)
            runs.append([output[:rows] for output in outputs])
        if len(runs) == 1:
            return tuple(runs[0])
        return tuple(torch.cat(list(parts)) for parts in zip(*runs, strict=True))


def _load(path: Path) -> CompiledModel:
    return torch._inductor.aoti_load_package(str(path))


def load_compiled_stages(package: TrackerPackage, device: torch.device) -> tuple[CompiledStages | None, str]:
    """The package's compiled stages where they fit this machine, and which form its stages run in. A
    `compiled/` that cannot be read leaves the TorchScript stages running, with a warning: they are
    complete on their own."""
    package_root = package.root
    meta_path = package_root / COMPILED_DIR / COMPILED_META
    if not meta_path.is_file():
        return None, "TorchScript (the package has no compiled stages)"
    try:
        recorded = json.loads(meta_path.read_text())
        if recorded.get("format") != COMPILED_FORMAT:
            raise ValueError(f"format {recorded.get('format')!r}, this version reads {COMPILED_FORMAT}")
        meta = CompiledMeta.model_validate(recorded)
    except (ValueError, AttributeError) as error:  # JSON and validation errors are ValueErrors
        return _torchscript(package_root, f"{meta_path} is not readable: {error}")
    misfit = compiled_misfit(
        meta,
        torch_version=torch.__version__,
        flags=cpu_flags(read_cpuinfo()),
        device=device,
        stages=stages_sha256(package),
    )
    if misfit is not None:
        return _torchscript(package_root, misfit)
    try:
        stages = CompiledStages(package_root / COMPILED_DIR, meta)
    except (OSError, RuntimeError) as error:  # a missing or damaged .pt2
        return _torchscript(package_root, f"they did not load: {error}")
    buckets = ",".join(str(bucket) for bucket in meta.buckets)
    return stages, f"AOTInductor (buckets {buckets})"


def _torchscript(package_root: Path, reason: str) -> tuple[None, str]:
    log.warning("%s: running the TorchScript stages, the compiled ones are skipped: %s", package_root, reason)
    return None, f"TorchScript (compiled stages skipped: {reason})"
