"""A tritonserver for the tests and the service benchmark: the launcher of
`siamstream_services.inference.triton_server` on three free loopback ports.

Guarantees (`TritonServer`'s): every endpoint binds 127.0.0.1; `start` returns once `/v2/health/ready`
answers, or stops the server and raises after its startup timeout; `stop` signals the pid it started
(SIGTERM, SIGKILL after its stop timeout), kills the python-backend stubs of its process group and deletes
the /dev/shm regions of that launch. Its log and backend links go to the caller's `work_dir`.

Needs nvidia-pytriton's tritonserver in a venv of its own (`scripts/install_triton.sh`).
"""

from __future__ import annotations

from pathlib import Path

from siamstream_services.inference.triton_server import TritonInstall, TritonServer, find_triton_install

from .ports import free_port


def triton_missing_reason(venv: Path) -> str | None:
    """Why no tritonserver can start from `venv`, or None when it is installed there."""
    try:
        find_triton_install(venv)
    except FileNotFoundError as error:
        return f"{error} (run scripts/install_triton.sh)"
    return None


def loopback_triton(install: TritonInstall, model_repository: Path, work_dir: Path) -> TritonServer:
    """A TritonServer of `install` serving `model_repository` on three free loopback ports (not started)."""
    return TritonServer(
        install,
        model_repository,
        work_dir=work_dir,
        grpc_port=free_port(),
        http_port=free_port(),
        metrics_port=free_port(),
    )
