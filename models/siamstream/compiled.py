"""Ahead-of-time compiled stages: AOTInductor libraries beside a tracker package's TorchScript files.

A package exported with batch-size buckets also holds `compiled/`: per bucket B the template stage, and
the search stage once per search crop side its tracker may use (`search_sides`), each exported by
`torch.export` for exactly B rows and compiled by AOTInductor into a `.pt2` archive holding a shared
library with the weights frozen in. `compiled.json` names the buckets and sides, the torch version that
built them, and the instruction-set flags of the CPU that built them: inductor emits the widest vector
code (AVX-512, AMX tiles) of the machine it runs on, which faults on a CPU without it.

At run time a runner takes the compiled stages only where they fit (`compiled_misfit`): the same torch
version, a CPU with every one of those flags, a CPU device. Otherwise it runs the TorchScript files, which
stay the portable form and the one Triton serves. A call of B rows runs in the smallest bucket of at least
B rows, padded with copies of its last row whose outputs are dropped; more rows than the largest bucket
run in chunks of it (`bucket_plan`). The template update stage (`update.pt`) is not compiled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from siamstream.config import Precision, TrackerConfig
from siamstream.machine import cpu_flags, read_cpuinfo
from siamstream.nn.network import SiameseNetwork
from siamstream.nn.stages import SearchStage, TemplateStage
from siamstream.nn.template_update import FeatureSearchStage
from siamstream.tracking.search_options import search_sides

log = logging.getLogger(__name__)

COMPILED_DIR = "compiled"
COMPILED_META = "compiled.json"
COMPILED_FORMAT = 1
# The flags inductor's generated code may rely on: its x86 vector instruction sets and AMX tiles, and
# ARM's SIMD. Flags outside this set (crypto, virtualisation, ...) never decide whether the code runs.
CODEGEN_FLAGS = frozenset(
    {
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512dq",
        "avx512vl",
        "avx512bw",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "avx_vnni",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
        "asimd",
        "sve",
    }
)

CompiledModel = Callable[..., Tensor | Sequence[Tensor]]


class CompiledMeta(BaseModel):
    """Contents of compiled/compiled.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = COMPILED_FORMAT
    torch_version: str
    cpu_capability: str
    cpu_flags: tuple[str, ...]
    precision: Precision
    buckets: tuple[int, ...]
    search_sides: tuple[int, ...]


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


def codegen_flags() -> tuple[str, ...]:
    """This CPU's flags that compiled code may rely on, sorted."""
    return tuple(sorted(cpu_flags(read_cpuinfo()) & CODEGEN_FLAGS))


def compile_stages(
    network: SiameseNetwork,
    config: TrackerConfig,
    package_root: Path,
    precision: Precision,
    buckets: Sequence[int],
) -> CompiledMeta:
    """Compile the template and search stages of `network` per bucket (and search side) into
    `package_root/compiled/`, as the package's TorchScript stages compute them (same precision, the search
    features returned too when the config enables the template update)."""
    ordered = check_buckets(buckets)
    template = TemplateStage(network, precision)
    search_type = FeatureSearchStage if config.template_update.enabled else SearchStage
    search = search_type(network, precision)
    sides = search_sides(config)
    directory = package_root / COMPILED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    exemplar = config.crop.exemplar_size
    for bucket in ordered:
        crop_z = torch.zeros(bucket, 3, exemplar, exemplar, dtype=torch.uint8)
        box_prior = torch.ones(bucket, 2)
        _compile(template, (crop_z, box_prior), directory / template_file(bucket))
        with torch.no_grad():
            embedding = template(crop_z, box_prior)
        for side in sides:
            crop_x = torch.zeros(bucket, 3, side, side, dtype=torch.uint8)
            _compile(search, (embedding, crop_x), directory / search_file(bucket, side))
    meta = CompiledMeta(
        torch_version=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_flags=codegen_flags(),
        precision=precision,
        buckets=ordered,
        search_sides=sides,
    )
    (directory / COMPILED_META).write_text(meta.model_dump_json(indent=2) + "\n")
    return meta


def _compile(stage: nn.Module, example: tuple[Tensor, ...], path: Path) -> None:
    program = torch.export.export(stage, example)
    # Freezing makes the weights constants of the generated code, as torch.jit.freeze does for the
    # TorchScript files (batch norms folded into the convolutions).
    torch._inductor.aoti_compile_and_package(
        program, package_path=str(path), inductor_configs={"freezing": True}
    )


def compiled_misfit(
    meta: CompiledMeta, *, torch_version: str, flags: set[str], device: torch.device
) -> str | None:
    """Why compiled stages described by `meta` cannot run here, or None when they can."""
    if meta.format != COMPILED_FORMAT:
        return f"compiled format {meta.format}, this version reads {COMPILED_FORMAT}"
    if device.type != "cpu":
        return f"they are compiled for the CPU, not {device.type}"
    if meta.torch_version != torch_version:
        return f"they were built with torch {meta.torch_version}, this is torch {torch_version}"
    missing = sorted(set(meta.cpu_flags) - flags)
    if missing:
        return f"they were built on a CPU with {', '.join(missing)}, which this CPU lacks"
    return None


def bucket_plan(rows: int, buckets: Sequence[int]) -> list[tuple[int, int, int]]:
    """How a call of `rows` rows runs: `(start, stop, bucket)` per run, each run's rows `start:stop` padded
    to `bucket` rows; `buckets` sorted ascending."""
    plan = []
    start = 0
    while start < rows:
        left = rows - start
        bucket = next((size for size in buckets if size >= left), buckets[-1])
        stop = start + min(left, bucket)
        plan.append((start, stop, bucket))
        start = stop
    return plan


class CompiledStages:
    """A package's compiled template and search stages, called with tensors like its TorchScript stages."""

    def __init__(self, directory: Path, meta: CompiledMeta) -> None:
        self.meta = meta
        self._template = {bucket: _load(directory / template_file(bucket)) for bucket in meta.buckets}
        self._search = {
            (bucket, side): _load(directory / search_file(bucket, side))
            for bucket in meta.buckets
            for side in meta.search_sides
        }

    def template(self, crop_z: Tensor, box_prior: Tensor) -> Tensor:
        return self._run(self._template, (crop_z, box_prior))[0]

    def serves_side(self, side: int) -> bool:
        return side in self.meta.search_sides

    def search(self, template_embedding: Tensor, crop_x: Tensor) -> tuple[Tensor, ...]:
        side = crop_x.shape[-1]
        models = {bucket: self._search[bucket, side] for bucket in self.meta.buckets}
        return self._run(models, (template_embedding, crop_x))

    def _run(self, models: Mapping[int, CompiledModel], inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        runs = []
        for start, stop, bucket in bucket_plan(inputs[0].shape[0], self.meta.buckets):
            rows = stop - start
            chunk = [tensor[start:stop] for tensor in inputs]
            if rows < bucket:
                chunk = [torch.cat([t, t[-1:].expand(bucket - rows, *t.shape[1:])]) for t in chunk]
            outputs = models[bucket](*chunk)
            if isinstance(outputs, Tensor):  # a stage returning one tensor (the template stage)
                outputs = (outputs,)
            runs.append([output[:rows] for output in outputs])
        if len(runs) == 1:
            return tuple(runs[0])
        return tuple(torch.cat(list(parts)) for parts in zip(*runs, strict=True))


def _load(path: Path) -> CompiledModel:
    return torch._inductor.aoti_load_package(str(path))


def load_compiled_stages(package_root: Path, device: torch.device) -> tuple[CompiledStages | None, str]:
    """The package's compiled stages where they fit this machine, and which form its stages run in."""
    meta_path = package_root / COMPILED_DIR / COMPILED_META
    if not meta_path.is_file():
        return None, "TorchScript (the package has no compiled stages)"
    meta = CompiledMeta.model_validate(json.loads(meta_path.read_text()))
    misfit = compiled_misfit(
        meta, torch_version=torch.__version__, flags=cpu_flags(read_cpuinfo()), device=device
    )
    if misfit is not None:
        log.warning(
            "%s: running the TorchScript stages: the compiled ones do not fit, %s", package_root, misfit
        )
        return None, f"TorchScript (compiled stages skipped: {misfit})"
    buckets = ",".join(str(bucket) for bucket in meta.buckets)
    return CompiledStages(package_root / COMPILED_DIR, meta), f"AOTInductor (buckets {buckets})"
