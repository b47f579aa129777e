"""Launch nvidia-pytriton's `tritonserver` binary on a model repository (tests, dev, demo).

The model-server environment is a separate venv (`scripts/install_triton.sh`, numpy < 2: with numpy 2 the
2.51 python stub returns EMPTY outputs without an error). What the pip-installed server needs, applied here:
- `LD_LIBRARY_PATH` starts with that venv's Python LIBDIR (otherwise the stub may load the system
  libpython) and includes the wheel's `nvidia_pytriton.libs` (the stub is symlinked into a backend dir);
- `PATH` starts with that venv's `bin`, because the stub finds its Python environment via `python3`;
- every endpoint binds 127.0.0.1 on the given ports (defaults are 0.0.0.0:8000-8002);
- the python backend's shared-memory regions get a per-launch prefix, so stopping one server removes
  exactly the `/dev/shm` regions it leaked and never another server's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SHM_REGION_PREFIX = "triton_python_backend_shm_region_"
_SITE = "lib/python3.*/site-packages"


@dataclass(frozen=True)
class TritonInstall:
    """Paths of a tritonserver installed by nvidia-pytriton into a venv."""

    venv: Path
    server_binary: Path
    python_backend: Path  # libtriton_python.so and triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub built for the venv's Python version
    bundled_libs: Path  # nvidia_pytriton.libs
    python_libdir: Path  # sysconfig LIBDIR of the venv's Python (its libpython)


def find_triton_install(venv: str | Path) -> TritonInstall:
    """Locate the server pieces in `venv`; FileNotFoundError names what is missing."""
    venv = Path(venv)
    python = venv / "bin" / "python3"
    site_dirs = sorted(venv.glob(_SITE))
    if not python.exists() or not site_dirs:
        raise FileNotFoundError(f"no Python venv at {venv}")
    site = site_dirs[0]
    version = site.parent.name.removeprefix("python")
    dist = site / "pytriton" / "tritonserver"
    install = TritonInstall(
        venv=venv,
        server_binary=dist / "bin" / "tritonserver",
        python_backend=dist / "backends" / "python",
        stub=dist / "python_backend_stubs" / version / "triton_python_backend_stub",
        bundled_libs=site / "nvidia_pytriton.libs",
        python_libdir=Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                check=True,
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        ),
    )
    for path in (install.server_binary, install.python_backend, install.stub, install.bundled_libs):
        if not path.exists():
            raise FileNotFoundError(f"tritonserver piece missing: {path}")
    return install


class TritonServer:
    """One tritonserver process on loopback; `start()` waits until it is ready, `stop()` always cleans up.

    `work_dir` receives the backend directory and `tritonserver.log` (appended to across restarts).
    """

    def __init__(
        self,
        install: TritonInstall,
        model_repository: str | Path,
        *,
        work_dir: str | Path,
        grpc_port: int,
        http_port: int,
        metrics_port: int,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 10.0,
    ):
        self.install = install
        self.model_repository = Path(model_repository)
        self.work_dir = Path(work_dir)
        self.host = host
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.metrics_port = metrics_port
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.log_path = self.work_dir / "tritonserver.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._shm_prefix = ""

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def shm_region_prefix(self) -> str:
        """Name prefix of the python backend's /dev/shm regions of the current (or last) launch."""
        return self._shm_prefix

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Launch the server and wait until `/v2/health/ready` answers 200 (bounded by startup_timeout_s)."""
        if self._process is not None:
            raise RuntimeError("tritonserver already started")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        backends = self._prepare_backend_directory()
        self._shm_prefix = f"{SHM_REGION_PREFIX}siamstream_{uuid.uuid4().hex[:12]}_"
        command = [
            str(self.install.server_binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--disable-auto-complete-config",
            f"--exit-timeout-secs={max(1, int(self.stop_timeout_s) - 1)}",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._environment(), start_new_session=True
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after stop_timeout_s; reap the stubs; remove leaked shm regions."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL at once (a crash, for tests); cleans up like stop()."""
        self._terminate(signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _prepare_backend_directory(self) -> Path:
        """backends/python with the shipped backend library and the stub for the venv's Python."""
        python_dir = self.work_dir / "backends" / "python"
        python_dir.mkdir(parents=True, exist_ok=True)
        links = {
            "libtriton_python.so": self.install.python_backend / "libtriton_python.so",
            "triton_python_backend_utils.py": self.install.python_backend / "triton_python_backend_utils.py",
            "triton_python_backend_stub": self.install.stub,
        }
        for name, target in links.items():
            link = python_dir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        return python_dir.parent

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        library_path = [str(self.install.python_libdir), str(self.install.bundled_libs)]
        if env.get("LD_LIBRARY_PATH"):
            library_path.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = ":".join(library_path)
        env["PATH"] = f"{self.install.venv / 'bin'}:{env.get('PATH', '')}"
        return env

    def _wait_ready(self) -> None:
        assert self._process is not None
        url = f"http://{self.host}:{self.http_port}/v2/health/ready"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"tritonserver not ready after {self.startup_timeout_s} s:\n{self.log_tail()}")

    def _terminate(self, first_signal: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(first_signal)
            try:
                process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.stop_timeout_s)
        # Python stubs left behind by a killed server are in the session this launcher created for it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for region in Path("/dev/shm").glob(f"{self._shm_prefix}*"):
            region.unlink(missing_ok=True)
