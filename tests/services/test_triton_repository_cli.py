"""`siamstream triton-repository`: the console command writes both repository forms from tracker packages."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from siamstream.cli.main import main
from siamstream.package import TrackerPackage
from siamstream_services.settings import TritonBatchingSettings
from tests.services.triton_fixtures import write_test_package


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> list[TrackerPackage]:
    root = tmp_path_factory.mktemp("packages")
    return [write_test_package(root / "tiny", "tiny"), write_test_package(root / "tinier", "tinier", seed=1)]


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    code = exit_.value.code
    assert isinstance(code, int)
    return code


def read_config(model_dir: Path) -> mc.ModelConfig:
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())


def test_cpu_test_form_of_two_packages_with_batching(
    packages: list[TrackerPackage], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "repository"
    argv = ["triton-repository", "--out", str(out), "--form", "cpu-test", "--max-batch", "8"]
    argv += ["--queue-delay-us", "300"]
    for package in packages:
        argv += ["--package", str(package.root)]

    assert run(argv) == 0

    models = ["tiny_template", "tiny_search", "tinier_template", "tinier_search"]
    assert sorted(path.name for path in out.iterdir()) == sorted(models)
    assert capsys.readouterr().out.strip() == f"wrote {out} (cpu-test): {', '.join(models)}"
    for name in models:
        config = read_config(out / name)
        assert (config.name, config.backend, config.platform) == (name, "python", "")
        assert [group.kind for group in config.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
        assert config.max_batch_size == 8
        assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
        assert config.dynamic_batching.max_queue_delay_microseconds == 300
        assert "class TritonPythonModel" in (out / name / "1/model.py").read_text()
    for package in packages:
        tracker = package.meta.tracker
        assert (out / f"{tracker}_search/1/model.pt").read_bytes() == package.search_path.read_bytes()
        assert (out / f"{tracker}_template/1/model.pt").read_bytes() == package.template_path.read_bytes()


def test_production_form_keeps_the_generators_batching_defaults(
    packages: list[TrackerPackage], tmp_path: Path
) -> None:
    package = packages[0]
    argv = [
        "triton-repository",
        "--package",
        str(package.root),
        "--out",
        str(tmp_path),
        "--form",
        "production",
    ]

    assert run(argv) == 0

    defaults = TritonBatchingSettings()
    for name in ("tiny_template", "tiny_search"):
        config = read_config(tmp_path / name)
        assert (config.platform, config.backend) == ("pytorch_libtorch", "")
        assert [group.kind for group in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
        assert config.max_batch_size == defaults.max_batch_size
        assert config.dynamic_batching.max_queue_delay_microseconds == defaults.max_queue_delay_microseconds
        assert not (tmp_path / name / "1/model.py").exists()


def test_a_directory_that_is_not_a_package_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    argv = ["triton-repository", "--package", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]

    assert run([*argv, "--form", "production"]) == 2

    assert "is not a tracker package" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_two_packages_of_one_tracker_are_refused(
    packages: list[TrackerPackage], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = write_test_package(tmp_path / "tiny-again", "tiny", seed=2)
    argv = ["triton-repository", "--package", str(packages[0].root), "--package", str(copy.root)]

    assert run([*argv, "--out", str(tmp_path / "out"), "--form", "cpu-test"]) == 2

    assert "two packages hold the same tracker: tiny, tiny" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--form", "gpu"], "invalid choice: 'gpu'"),
        (["--form", "cpu-test", "--max-batch", "0"], "must be 1 or more, got 0"),
        (["--form", "cpu-test", "--queue-delay-us", "-1"], "must be 0 or more, got -1"),
        # The settings' bound, named by its variable.
        (["--form", "cpu-test", "--max-batch", "257"], "SIAMSTREAM_TRITON_MAX_BATCH_SIZE (max_batch_size"),
    ],
)
def test_bad_options_are_usage_errors(
    packages: list[TrackerPackage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: list[str],
    message: str,
) -> None:
    argv = ["triton-repository", "--package", str(packages[0].root), "--out", str(tmp_path / "out")]

    assert run([*argv, *option]) == 2

    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_environment_schedules_the_models_and_is_checked_by_name(
    packages: list[TrackerPackage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["triton-repository", "--package", str(packages[0].root), "--form", "cpu-test"]
    monkeypatch.setenv("SIAMSTREAM_TRITON_MAX_BATCH_SIZE", "4")
    monkeypatch.setenv("SIAMSTREAM_TRITON_INSTANCE_COUNT", "2")

    assert run([*argv, "--out", str(tmp_path / "from-env")]) == 0
    config = read_config(tmp_path / "from-env" / "tiny_search")
    assert (config.max_batch_size, config.instance_group[0].count) == (4, 2)
    # A flag overrides its variable.
    assert run([*argv, "--out", str(tmp_path / "flag"), "--max-batch", "8"]) == 0
    assert read_config(tmp_path / "flag" / "tiny_search").max_batch_size == 8

    capsys.readouterr()
    monkeypatch.setenv("SIAMSTREAM_TRITON_INSTANCE_COUNT", "0")
    assert run([*argv, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "SIAMSTREAM_TRITON_INSTANCE_COUNT (instance_count in a config file)" in error
    assert "Traceback" not in error
    assert not (tmp_path / "out").exists()
