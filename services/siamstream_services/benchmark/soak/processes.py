"""The soaked service as a process: `siamstream serve` on a free loopback port, stopped by its pid, with its
resident memory, file descriptors and threads read from /proc and its log summarised at the end. (Its
redis-server is `siamstream_services.testing.redis_server.RedisServer`.)"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream_services.testing.ports import free_port
from siamstream_services.testing.processes import terminate

# Loading torch and the package on a busy machine takes tens of seconds.
START_TIMEOUT_S = 180.0
# The service drains for SIAMSTREAM_DRAIN_GRACE_S, then closes the backend and the store.
DRAIN_GRACE_S = 2.0
STOP_TIMEOUT_S = 30.0
LOG_MESSAGES_SHOWN = 8
SIAMSTREAM_ENV_PREFIX = "SIAMSTREAM_"
# `siamstream`'s log format: "%(asctime)s %(levelname)s %(name)s: %(message)s".
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (?P<level>[A-Z]+) (?P<name>\S+): (?P<message>.*)$")
CRASH_MARKERS = ("Fatal Python error", "Segmentation fault", "Traceback (most recent call last)")


@dataclass(frozen=True)
class ProcessSample:
    rss_mib: float
    fds: int
    threads: int


def process_sample(pid: int) -> ProcessSample | None:
    """Resident memory, open file descriptors and threads of `pid`; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return ProcessSample(int(fields["VmRSS"].split()[0]) / 1024, fds, int(fields["Threads"]))


class ServiceProcess:
    """`siamstream serve` over `store_url`, serving the package at `package_root`, logging to `log_path`."""

    def __init__(self, package_root: Path, store_url: str, log_path: Path, idle_ttl_s: int) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.log_path = log_path
        # The caller's own SIAMSTREAM_* settings (API keys, a config file) would change what is soaked.
        env = {key: value for key, value in os.environ.items() if not key.startswith(SIAMSTREAM_ENV_PREFIX)}
        env.update(
            {
                "PYTHONFAULTHANDLER": "1",  # a crash leaves its stack in the log
                "SIAMSTREAM_LISTEN_ADDRESS": self.address,
                "SIAMSTREAM_STORE_URL": store_url,
                "SIAMSTREAM_INFERENCE_BACKEND": "embedded",
                "SIAMSTREAM_PACKAGE_DIR": str(package_root.parent.resolve()),
                "SIAMSTREAM_TRACKER_PACKAGES": json.dumps([package_root.name]),
                "SIAMSTREAM_METRICS_PORT": "0",
                "SIAMSTREAM_DRAIN_GRACE_S": str(DRAIN_GRACE_S),
                "SIAMSTREAM_SESSION_IDLE_TTL_S": str(idle_ttl_s),
            }
        )
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "siamstream.cli", "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.stop_exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the service exited with {self.process.returncode}: {self.log_tail()}"
                    )
                with contextlib.suppress(grpc.RpcError):
                    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                time.sleep(0.2)
        raise RuntimeError(f"the service was not SERVING within {START_TIMEOUT_S} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM by pid (the service drains), SIGKILL if it hangs; the exit code is kept."""
        if self.stop_exit_code is None:
            self.stop_exit_code = terminate(self.process, STOP_TIMEOUT_S)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def log_summary(self) -> dict:
        """Lines per level, WARNING and above grouped by message (digits folded), and crash markers."""
        levels: Counter[str] = Counter()
        messages: Counter[str] = Counter()
        examples: dict[str, str] = {}
        crashes: Counter[str] = Counter()
        with self.log_path.open(errors="replace") as log:
            for line in log:
                for marker in CRASH_MARKERS:
                    if marker in line:
                        crashes[marker] += 1
                match = LOG_LINE.match(line.rstrip("\n"))
                if match is None:
                    continue
                levels[match["level"]] += 1
                if match["level"] in ("WARNING", "ERROR", "CRITICAL"):
                    text = f"{match['level']} {match['name']}: {match['message']}"
                    shape = re.sub(r"[0-9a-f]{8,}|\d+(\.\d+)?", "N", text)
                    messages[shape] += 1
                    examples.setdefault(shape, text[:300])
        return {
            "lines_per_level": dict(levels),
            "crash_markers": dict(crashes),
            "warnings_and_errors": [
                {"count": count, "example": examples[shape]}
                for shape, count in messages.most_common(LOG_MESSAGES_SHOWN)
            ],
        }
