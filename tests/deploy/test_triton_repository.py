"""The production model repository generated from a real siamrpn_alex package (seeded random weights)."""

from __future__ import annotations

from pathlib import Path

import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from siamstream.package import read_package
from siamstream_services.inference.triton_repository import RepositoryForm, write_model_repository
from tests.services.session_fixtures import TRACKER, export_test_package


def test_production_configs_of_a_real_package(tmp_path: Path) -> None:
    package = read_package(export_test_package(tmp_path / "packages"))
    repository = tmp_path / "repository"
    names = write_model_repository([package], repository, form=RepositoryForm.PRODUCTION)
    assert names == [f"{TRACKER}_template", f"{TRACKER}_search"]
    for name in names:
        config = text_format.Parse((repository / name / "config.pbtxt").read_text(), mc.ModelConfig())
        assert config.platform == "pytorch_libtorch" and not config.backend
        assert [group.kind for group in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
        assert config.max_batch_size > 1
        assert config.HasField("dynamic_batching")
        assert config.dynamic_batching.max_queue_delay_microseconds > 0
        assert {warmup.batch_size for warmup in config.model_warmup} == {1, config.max_batch_size}
        assert all(
            set(warmup.inputs) == {tensor.name for tensor in config.input} for warmup in config.model_warmup
        )
        assert config.parameters["EXPORT_TORCH_VERSION"].string_value == torch.__version__
        assert (repository / name / "1" / "model.pt").is_file()
        assert not (repository / name / "1" / "model.py").exists()
