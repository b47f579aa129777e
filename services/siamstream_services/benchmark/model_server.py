"""The inference backend a service benchmark runs on: in-process TorchScript, or a Triton server it starts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from siamstream.package import TrackerPackage
from siamstream_services.inference.triton_repository import RepositoryForm, write_model_repository
from siamstream_services.inference.triton_server import find_triton_install
from siamstream_services.settings import TritonBatchingSettings, load_settings
from siamstream_services.testing.triton import loopback_triton

BACKENDS = ("embedded", "triton")


@contextmanager
def model_server(backend: str, package: TrackerPackage, work_dir: Path, triton_venv: Path) -> Iterator[str]:
    """Yield the service's `inference_backend` setting for `backend` (`embedded` or `triton`).

    For `triton`: write the CPU test form of the model repository for `package` under `work_dir`,
    scheduled by the `SIAMSTREAM_TRITON_*` settings, start nvidia-pytriton's tritonserver from
    `triton_venv` on free loopback ports, and stop it on exit.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "embedded":
        yield "embedded"
        return
    # Resolved: the launcher symlinks the stub into work_dir, and a relative target would dangle there.
    install = find_triton_install(triton_venv.resolve())
    repository = work_dir / "triton-models"
    batching = load_settings(TritonBatchingSettings)
    write_model_repository([package], repository, form=RepositoryForm.CPU_TEST, batching=batching)
    with loopback_triton(install, repository, work_dir / "triton") as server:
        yield f"triton://{server.grpc_url}"
