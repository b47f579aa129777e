"""Generate a Triton model repository from tracker packages: ONE generator, two forms.

- `RepositoryForm.PRODUCTION`: `platform: "pytorch_libtorch"`, `KIND_GPU`, `1/model.pt` - what the
  official Triton container serves.
- `RepositoryForm.CPU_TEST`: identical except `backend: "python"`, `KIND_CPU` and a generic `1/model.py`
  (`triton_python_model.py`) that `torch.jit.load`s the same `model.pt`. nvidia-pytriton's tritonserver
  has only the python backend, so this is the form the tests and the dev launcher run.

Each tracker gives two models, `<tracker>_template` and `<tracker>_search`, with TorchScript's I/O names
(`INPUT__0`, `INPUT__1`, `OUTPUT__0`...), the batch dimension implicit (`max_batch_size > 0`) and the
export torch version recorded as the parameter `EXPORT_TORCH_VERSION`, because a TorchScript file saved by
a newer torch may not load in an older container's libtorch. `config.pbtxt` is built as a `ModelConfig`
protobuf (tritonclient ships Triton's schema) and written in text format, so a typo cannot produce a
config that Triton rejects at load time.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from siamstream.package import TrackerPackage

PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_python_model.py")
MODEL_FILE = "model.pt"
VERSION = "1"


class RepositoryForm(StrEnum):
    PRODUCTION = "production"
    CPU_TEST = "cpu_test"


@dataclass(frozen=True)
class BatchingSettings:
    """Triton scheduling of every generated model."""

    max_batch_size: int = 16
    preferred_batch_sizes: tuple[int, ...] = (4, 8, 16)
    # Extra latency a lone request may wait for company; keep it below one frame's budget.
    max_queue_delay_microseconds: int = 500
    instance_count: int = 1


@dataclass(frozen=True)
class _Tensor:
    data_type: int
    dims: tuple[int, ...]  # without the implicit batch dimension


def template_model_name(tracker: str) -> str:
    return f"{tracker}_template"


def search_model_name(tracker: str) -> str:
    return f"{tracker}_search"


def write_model_repository(
    packages: Iterable[TrackerPackage],
    repository: str | Path,
    *,
    form: RepositoryForm = RepositoryForm.PRODUCTION,
    batching: BatchingSettings = BatchingSettings(),
) -> list[str]:
    """Write both stages of every package into `repository` (model directories are replaced).

    Returns the model names written. Output shapes are found by running each stage once on CPU with a
    batch of one, so the configs carry exact dims and a package that breaks Contract 1 is refused here.
    """
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    written = []
    for package in packages:
        meta = package.meta
        z, x, d = package.config.crop.exemplar_size, package.config.crop.instance_size, meta.embedding_dim
        template_inputs = (_Tensor(mc.TYPE_UINT8, (3, z, z)), _Tensor(mc.TYPE_FP32, (2,)))
        search_inputs = (_Tensor(mc.TYPE_FP32, (d,)), _Tensor(mc.TYPE_UINT8, (3, x, x)))
        template_outputs = _probe_outputs(package.template_path, template_inputs)
        if template_outputs != (_Tensor(mc.TYPE_FP32, (d,)),):
            raise ValueError(f"{package.template_path} does not return float32 [B, {d}] (embedding_dim)")
        search_outputs = _probe_outputs(package.search_path, search_inputs)
        if len(search_outputs) != len(meta.search_outputs):
            raise ValueError(
                f"{package.search_path} returns {len(search_outputs)} outputs, package.json names "
                f"{len(meta.search_outputs)}"
            )
        stages = (
            (template_model_name(meta.tracker), package.template_path, template_inputs, template_outputs),
            (search_model_name(meta.tracker), package.search_path, search_inputs, search_outputs),
        )
        for name, source, inputs, outputs in stages:
            config = model_config(
                name, inputs, outputs, form=form, batching=batching, torch_version=meta.torch_version
            )
            _write_model(repository / name, config, source, form)
            written.append(name)
    return written


def model_config(
    name: str,
    inputs: tuple[_Tensor, ...],
    outputs: tuple[_Tensor, ...],
    *,
    form: RepositoryForm,
    batching: BatchingSettings,
    torch_version: str,
) -> mc.ModelConfig:
    """The ModelConfig of one stage; the two forms differ only in backend/platform and instance kind."""
    config = mc.ModelConfig(name=name, max_batch_size=batching.max_batch_size)
    if form is RepositoryForm.PRODUCTION:
        config.platform = "pytorch_libtorch"
        kind = mc.ModelInstanceGroup.KIND_GPU
    else:
        config.backend = "python"
        kind = mc.ModelInstanceGroup.KIND_CPU
    config.instance_group.add(count=batching.instance_count, kind=kind)
    for index, tensor in enumerate(inputs):
        config.input.add(name=f"INPUT__{index}", data_type=tensor.data_type, dims=tensor.dims)
    for index, tensor in enumerate(outputs):
        config.output.add(name=f"OUTPUT__{index}", data_type=tensor.data_type, dims=tensor.dims)
    config.dynamic_batching.preferred_batch_size.extend(
        size for size in batching.preferred_batch_sizes if size <= batching.max_batch_size
    )
    config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_microseconds
    config.parameters["INFERENCE_MODE"].string_value = "true"
    config.parameters["EXPORT_TORCH_VERSION"].string_value = torch_version
    # Warm up at both ends of the batch range: TorchScript's profiling executor specialises per shape.
    for batch_size in sorted({1, batching.max_batch_size}):
        warmup = config.model_warmup.add(name=f"zeros_batch_{batch_size}", batch_size=batch_size, count=2)
        for index, tensor in enumerate(inputs):
            sample = warmup.inputs[f"INPUT__{index}"]
            sample.data_type = tensor.data_type
            sample.dims.extend(tensor.dims)
            sample.zero_data = True
    return config


def _write_model(directory: Path, config: mc.ModelConfig, source: Path, form: RepositoryForm) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    version = directory / VERSION
    version.mkdir(parents=True)
    (directory / "config.pbtxt").write_text(text_format.MessageToString(config))
    shutil.copyfile(source, version / MODEL_FILE)
    if form is RepositoryForm.CPU_TEST:
        shutil.copyfile(PYTHON_MODEL_SOURCE, version / "model.py")


_TORCH_DTYPES = {mc.TYPE_UINT8: torch.uint8, mc.TYPE_FP32: torch.float32}
_TRITON_DTYPES = {torch.float32: mc.TYPE_FP32}


def _probe_outputs(path: Path, inputs: tuple[_Tensor, ...]) -> tuple[_Tensor, ...]:
    """Run a stage once on zeros (batch of one) and describe its outputs."""
    module = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.inference_mode():
        result = module(*[torch.zeros((1, *t.dims), dtype=_TORCH_DTYPES[t.data_type]) for t in inputs])
    outputs = (result,) if isinstance(result, torch.Tensor) else tuple(result)
    described = []
    for output in outputs:
        if output.dtype not in _TRITON_DTYPES:
            raise ValueError(f"{path} returns {output.dtype}; Contract 1 outputs are float32")
        described.append(_Tensor(_TRITON_DTYPES[output.dtype], tuple(output.shape[1:])))
    return tuple(described)
