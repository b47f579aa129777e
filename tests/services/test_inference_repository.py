"""Triton model repository generator: both forms from one function, configs parse as Triton's ModelConfig;
the third model, `<tracker>_update`, of an update-capable package."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from siamstream.package import TrackerPackage, read_package
from siamstream_services.inference.triton_repository import (
    SEARCH_FEATURES_PARAMETER,
    RepositoryForm,
    write_model_repository,
)
from siamstream_services.settings import TritonBatchingSettings
from tests.services.session_fixtures import export_update_package
from tests.services.triton_fixtures import EMBEDDING_DIM, EXEMPLAR_SIZE, INSTANCE_SIZE, write_test_package


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> TrackerPackage:
    return write_test_package(tmp_path_factory.mktemp("package") / "tiny")


def read_config(model_dir: Path) -> mc.ModelConfig:
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())


def test_the_generator_reads_no_environment(
    package: TrackerPackage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its callers load SIAMSTREAM_TRITON_* and pass them; without `batching` it takes the defaults.
    monkeypatch.setenv("SIAMSTREAM_TRITON_MAX_BATCH_SIZE", "4")
    monkeypatch.setenv("SIAMSTREAM_TRITON_INSTANCE_COUNT", "0")
    write_model_repository([package], tmp_path)

    search = read_config(tmp_path / "tiny_search")
    assert search.max_batch_size == TritonBatchingSettings.model_fields["max_batch_size"].default == 16
    assert [group.count for group in search.instance_group] == [1]


def test_production_form(package: TrackerPackage, tmp_path: Path) -> None:
    batching = TritonBatchingSettings(
        max_batch_size=8, preferred_batch_sizes=(4, 8), max_queue_delay_microseconds=300
    )
    names = write_model_repository([package], tmp_path, batching=batching)
    assert names == ["tiny_template", "tiny_search"]

    search = read_config(tmp_path / "tiny_search")
    assert search.name == "tiny_search" and search.platform == "pytorch_libtorch" and not search.backend
    assert [(g.kind, g.count) for g in search.instance_group] == [(mc.ModelInstanceGroup.KIND_GPU, 1)]
    assert search.max_batch_size == 8
    assert list(search.dynamic_batching.preferred_batch_size) == [4, 8]
    assert search.dynamic_batching.max_queue_delay_microseconds == 300
    assert [(t.name, t.data_type, list(t.dims)) for t in search.input] == [
        ("INPUT__0", mc.TYPE_FP32, [EMBEDDING_DIM]),
        ("INPUT__1", mc.TYPE_UINT8, [3, INSTANCE_SIZE, INSTANCE_SIZE]),
    ]
    assert [(t.name, t.data_type, list(t.dims)) for t in search.output] == [
        ("OUTPUT__0", mc.TYPE_FP32, [2, 9, 9]),
        ("OUTPUT__1", mc.TYPE_FP32, [4, 9, 9]),
    ]
    assert search.parameters["INFERENCE_MODE"].string_value == "true"
    assert search.parameters["EXPORT_TORCH_VERSION"].string_value == torch.__version__
    assert [(w.batch_size, sorted(w.inputs)) for w in search.model_warmup] == [
        (1, ["INPUT__0", "INPUT__1"]),
        (8, ["INPUT__0", "INPUT__1"]),
    ]
    assert all(w.inputs["INPUT__1"].zero_data for w in search.model_warmup)

    template = read_config(tmp_path / "tiny_template")
    assert [(t.name, t.data_type, list(t.dims)) for t in template.input] == [
        ("INPUT__0", mc.TYPE_UINT8, [3, EXEMPLAR_SIZE, EXEMPLAR_SIZE]),
        ("INPUT__1", mc.TYPE_FP32, [2]),
    ]
    assert [(t.name, list(t.dims)) for t in template.output] == [("OUTPUT__0", [EMBEDDING_DIM])]

    assert (tmp_path / "tiny_search/1/model.pt").read_bytes() == package.search_path.read_bytes()
    assert (tmp_path / "tiny_template/1/model.pt").read_bytes() == package.template_path.read_bytes()
    assert not (tmp_path / "tiny_search/1/model.py").exists()


def test_cpu_test_form_differs_only_in_backend_and_instance_kind(
    package: TrackerPackage, tmp_path: Path
) -> None:
    write_model_repository([package], tmp_path / "prod")
    write_model_repository([package], tmp_path / "cpu", form=RepositoryForm.CPU_TEST)
    for name in ("tiny_template", "tiny_search"):
        production, cpu = read_config(tmp_path / "prod" / name), read_config(tmp_path / "cpu" / name)
        assert cpu.backend == "python" and not cpu.platform
        assert cpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
        production.ClearField("platform")
        cpu.ClearField("backend")
        production.instance_group[0].kind = mc.ModelInstanceGroup.KIND_CPU
        assert production == cpu
        assert (tmp_path / "cpu" / name / "1/model.pt").read_bytes() == (
            tmp_path / "prod" / name / "1/model.pt"
        ).read_bytes()
        assert "class TritonPythonModel" in (tmp_path / "cpu" / name / "1/model.py").read_text()


def test_rewriting_replaces_a_model_directory(package: TrackerPackage, tmp_path: Path) -> None:
    write_model_repository([package], tmp_path, form=RepositoryForm.CPU_TEST)
    write_model_repository([package], tmp_path)
    assert not (tmp_path / "tiny_search/1/model.py").exists()


def test_package_disagreeing_with_its_model_is_refused(package: TrackerPackage, tmp_path: Path) -> None:
    wrong_outputs = package.model_copy(
        update={"meta": package.meta.model_copy(update={"search_outputs": ("cls",)})}
    )
    with pytest.raises(ValueError, match="returns 2 outputs"):
        write_model_repository([wrong_outputs], tmp_path)
    wrong_dim = package.model_copy(update={"meta": package.meta.model_copy(update={"embedding_dim": 7})})
    with pytest.raises(ValueError, match="embedding_dim"):
        write_model_repository([wrong_dim], tmp_path)


# --- update-capable packages ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def update_package(tmp_path_factory: pytest.TempPathFactory) -> TrackerPackage:
    """The real siamrpn_alex (seeded weights) exported with the template update stage."""
    return read_package(export_update_package(tmp_path_factory.mktemp("update")))


def described(tensors) -> list[tuple[str, int, list[int]]]:
    return [(t.name, t.data_type, list(t.dims)) for t in tensors]


def test_update_capable_package_gets_an_update_model(
    update_package: TrackerPackage, package: TrackerPackage, tmp_path: Path
) -> None:
    names = write_model_repository(
        [update_package, package], tmp_path, batching=TritonBatchingSettings(max_batch_size=4)
    )
    assert names == [
        "siamrpn_alex_template",
        "siamrpn_alex_search",
        "siamrpn_alex_update",
        "tiny_template",
        "tiny_search",
    ]
    dim = update_package.meta.embedding_dim
    features = [256, 26, 26]  # the AlexNet level map of the 287 px search crop
    search = read_config(tmp_path / "siamrpn_alex_search")
    assert described(search.output) == [
        ("OUTPUT__0", mc.TYPE_FP32, [10, 21, 21]),
        ("OUTPUT__1", mc.TYPE_FP32, [20, 21, 21]),
        ("OUTPUT__2", mc.TYPE_FP32, features),
    ]
    assert search.parameters[SEARCH_FEATURES_PARAMETER].string_value == "OUTPUT__2"
    assert SEARCH_FEATURES_PARAMETER not in read_config(tmp_path / "tiny_search").parameters

    update = read_config(tmp_path / "siamrpn_alex_update")
    assert update.name == "siamrpn_alex_update" and update.platform == "pytorch_libtorch"
    assert described(update.input) == [
        ("INPUT__0", mc.TYPE_FP32, [dim]),
        ("INPUT__1", mc.TYPE_FP32, features),
        ("INPUT__2", mc.TYPE_FP32, [4]),
        ("INPUT__3", mc.TYPE_FP32, [1]),
    ]
    assert described(update.output) == [("OUTPUT__0", mc.TYPE_FP32, [dim])]
    assert update.max_batch_size == 4 and update.parameters["INFERENCE_MODE"].string_value == "true"
    assert [(w.batch_size, sorted(w.inputs)) for w in update.model_warmup] == [
        (1, ["INPUT__0", "INPUT__1", "INPUT__2", "INPUT__3"]),
        (4, ["INPUT__0", "INPUT__1", "INPUT__2", "INPUT__3"]),
    ]
    model = tmp_path / "siamrpn_alex_update/1/model.pt"
    assert model.read_bytes() == update_package.update_path.read_bytes()


def test_update_model_in_the_cpu_test_form_serves_update_pt_generically(
    update_package: TrackerPackage, tmp_path: Path
) -> None:
    write_model_repository([update_package], tmp_path / "prod")
    write_model_repository([update_package], tmp_path / "cpu", form=RepositoryForm.CPU_TEST)
    production, cpu = (read_config(tmp_path / form / "siamrpn_alex_update") for form in ("prod", "cpu"))
    assert cpu.backend == "python" and cpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    production.ClearField("platform")
    cpu.ClearField("backend")
    production.instance_group[0].kind = mc.ModelInstanceGroup.KIND_CPU
    assert production == cpu
    assert "class TritonPythonModel" in (tmp_path / "cpu/siamrpn_alex_update/1/model.py").read_text()


def test_update_capable_package_must_list_the_search_features_last(
    update_package: TrackerPackage, tmp_path: Path
) -> None:
    reordered = update_package.model_copy(
        update={
            "meta": update_package.meta.model_copy(
                update={"search_outputs": ("search_features", "cls", "loc")}
            )
        }
    )
    with pytest.raises(ValueError, match="lists search_features last"):
        write_model_repository([reordered], tmp_path)
