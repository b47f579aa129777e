"""Generate a Triton model repository from tracker packages: ONE generator, two forms.

- `RepositoryForm.PRODUCTION`: `platform: "pytorch_libtorch"`, `KIND_GPU`, `1/model.pt` - what the
  official Triton container serves.
- `RepositoryForm.CPU_TEST`: identical except `backend: "python"`, `KIND_CPU` and a generic `1/model.py`
  (`triton_python_model.py`) that `torch.jit.load`s the same `model.pt`. nvidia-pytriton's tritonserver
  has only the python backend, so this is the form the tests and the dev launcher run.

Each tracker gives two models, `<tracker>_template` and `<tracker>_search`, and an update-capable package
(architecture.md, "Template update") a third, `<tracker>_update`, with TorchScript's I/O names
(`INPUT__0`, `INPUT__1`, `OUTPUT__0`...), the batch dimension implicit (`max_batch_size > 0`) and the
export torch version recorded as the parameter `EXPORT_TORCH_VERSION`, because a TorchScript file saved by
a newer torch may not load in an older container's libtorch. `config.pbtxt` is built as a `ModelConfig`
protobuf (tritonclient ships Triton's schema) and written in text format, so a typo cannot produce a
config that Triton rejects at load time.

The search model of an update-capable package names its search-features output in the parameter
`SEARCH_FEATURES_OUTPUT`, so that clients request it only when they update the template. The update
model's rate input is `[B, 1]` (a batched Triton input needs one dim per row); `update.pt` reads the rate
as one value per row either way.

A package whose tracker may search other crop sides than its instance size (`search_sides`: the adaptive
search region's grown crops, SiamBAN-ACM's fast-motion crop) gets one search model more per side,
`<tracker>_search_<side>`, and, when update-capable, the update model of that side's search features,
`<tracker>_update_<features side>` (`sized_model_name`). Why one model per side rather than one model with
variable dims: every config keeps exact dims, so the shared memory regions, the warm-ups and the
client's checks stay as they are, and TorchScript's profiling executor specialises each model to one
shape instead of re-specialising as sides alternate; the cost is one more copy of the search weights per
side in the server.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from siamstream.nn.template_update import SEARCH_FEATURES_OUTPUT
from siamstream.package import TrackerPackage
from siamstream.tracking.search_options import search_sides
from siamstream_services.settings import TritonBatchingSettings

PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_python_model.py")
MODEL_FILE = "model.pt"
VERSION = "1"
SEARCH_FEATURES_PARAMETER = "SEARCH_FEATURES_OUTPUT"
# The settings' defaults, without reading the environment: the caller loads SIAMSTREAM_TRITON_* and passes
# them (`siamstream triton-repository`, the service benchmark's model server).
DEFAULT_BATCHING = TritonBatchingSettings.model_construct()


class RepositoryForm(StrEnum):
    PRODUCTION = "production"
    CPU_TEST = "cpu_test"


@dataclass(frozen=True)
class _Tensor:
    data_type: int
    dims: tuple[int, ...]  # without the implicit batch dimension


@dataclass
class _Model:
    """One Triton model of a package: the stage file it serves, its tensors and its extra parameters."""

    name: str
    source: Path
    inputs: tuple[_Tensor, ...]
    outputs: tuple[_Tensor, ...]
    parameters: dict[str, str] = field(default_factory=dict)


def template_model_name(tracker: str) -> str:
    return f"{tracker}_template"


def search_model_name(tracker: str) -> str:
    return f"{tracker}_search"


def update_model_name(tracker: str) -> str:
    return f"{tracker}_update"


def sized_model_name(model: str, side: int) -> str:
    """The model of a stage at another spatial size than its base `model` serves: `<model>_<side>`, `side`
    being its spatial input's, the search crop's for a search model and the search features' for an
    update model, so that a client finds it from the tensors it sends."""
    return f"{model}_{side}"


def write_model_repository(
    packages: Iterable[TrackerPackage],
    repository: str | Path,
    *,
    form: RepositoryForm = RepositoryForm.PRODUCTION,
    batching: TritonBatchingSettings = DEFAULT_BATCHING,
) -> list[str]:
    """Write the stages of every package into `repository` (model directories are replaced): template and
    search, and the template update of update-capable packages; every model is scheduled by `batching`
    (default: `TritonBatchingSettings`' defaults; this function reads no environment).

    Returns the model names written. Output shapes are found by running each stage once on CPU with a
    batch of one, so the configs carry exact dims and a package that breaks Contract 1 is refused here.
    """
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    written = []
    for package in packages:
        meta = package.meta
        z, d = package.config.crop.exemplar_size, meta.embedding_dim
        template_inputs = (_Tensor(mc.TYPE_UINT8, (3, z, z)), _Tensor(mc.TYPE_FP32, (2,)))
        template_outputs = _probe_outputs(package.template_path, template_inputs)
        if template_outputs != (_Tensor(mc.TYPE_FP32, (d,)),):
            raise ValueError(f"{package.template_path} does not return float32 [B, {d}] (embedding_dim)")
        models = [
            _Model(
                template_model_name(meta.tracker), package.template_path, template_inputs, template_outputs
            )
        ]
        normal_side, *grown_sides = search_sides(package.config)
        models += _search_models(package, normal_side, sized=False)
        for side in grown_sides:
            models += _search_models(package, side, sized=True)
        for model in models:
            config = model_config(
                model.name,
                model.inputs,
                model.outputs,
                form=form,
                batching=batching,
                torch_version=meta.torch_version,
            )
            for key, value in model.parameters.items():
                config.parameters[key].string_value = value
            _write_model(repository / model.name, config, model.source, form)
            written.append(model.name)
    return written


def model_config(
    name: str,
    inputs: tuple[_Tensor, ...],
    outputs: tuple[_Tensor, ...],
    *,
    form: RepositoryForm,
    batching: TritonBatchingSettings,
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


def _search_models(package: TrackerPackage, side: int, *, sized: bool) -> list[_Model]:
    """The search model of crop side `side` and, for an update-capable package, the update model of its
    features; `sized` names them `sized_model_name` of the base names (a side other than the normal)."""
    meta = package.meta
    inputs = (_Tensor(mc.TYPE_FP32, (meta.embedding_dim,)), _Tensor(mc.TYPE_UINT8, (3, side, side)))
    outputs = _probe_outputs(package.search_path, inputs)
    if len(outputs) != len(meta.search_outputs):
        raise ValueError(
            f"{package.search_path} returns {len(outputs)} outputs, package.json names "
            f"{len(meta.search_outputs)}"
        )
    name = search_model_name(meta.tracker)
    search = _Model(sized_model_name(name, side) if sized else name, package.search_path, inputs, outputs)
    if not meta.template_update:
        return [search]
    search.parameters[SEARCH_FEATURES_PARAMETER] = f"OUTPUT__{len(outputs) - 1}"
    name = update_model_name(meta.tracker)
    if sized:
        name = sized_model_name(name, outputs[-1].dims[-1])
    return [search, _update_model(package, outputs[-1], name)]


def _update_model(package: TrackerPackage, search_features: _Tensor, name: str) -> _Model:
    """The update model `name` of an update-capable package; `search_features` is the search model's
    last output (the features it hands to the update)."""
    meta = package.meta
    if meta.search_outputs[-1] != SEARCH_FEATURES_OUTPUT:
        raise ValueError(f"{package.root}: an update-capable package lists {SEARCH_FEATURES_OUTPUT} last")
    embedding = _Tensor(mc.TYPE_FP32, (meta.embedding_dim,))
    inputs = (embedding, search_features, _Tensor(mc.TYPE_FP32, (4,)), _Tensor(mc.TYPE_FP32, (1,)))
    outputs = _probe_outputs(package.update_path, inputs)
    if outputs != (embedding,):
        raise ValueError(
            f"{package.update_path} does not return float32 [B, {meta.embedding_dim}] (embedding_dim)"
        )
    return _Model(name, package.update_path, inputs, outputs)


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
