"""Real redis-server instances for the store tests, on free loopback ports, stopped by pid at teardown,
and the tracker package the service tests serve.

`redis-server` comes from `scripts/install_redis.sh`; without it the tests that need one are skipped.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from siamstream_services.benchmark.model_server import free_port
from tests.services.session_fixtures import export_test_package

START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0


class RedisServer:
    """One redis-server process on 127.0.0.1 with its own data directory; restartable on the same port."""

    def __init__(self, binary: str, appendonly: bool) -> None:
        self.binary = binary
        self.appendonly = appendonly
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="siamstream-redis-"))
        self.pidfile = self.dir / "redis.pid"
        self.logfile = self.dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (data from an earlier run in the same directory is reloaded) and wait for PING."""
        command = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            # Every write reaches the AOF before the reply, so a restart right after a write keeps it.
            "--appendfsync", "always",
            "--dir", str(self.dir),
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        self._wait_for_ping()

    def freeze(self) -> None:
        """SIGSTOP the server: its port stays open but nothing answers, as with a hung server."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def stop(self) -> None:
        """SIGTERM the server by its pid (it saves the AOF and exits), SIGKILL it if it hangs."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a frozen server handles SIGTERM only once it runs again
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Stop and start again on the same port and directory."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait_for_ping(self) -> None:
        assert self._process is not None
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self._process.returncode}: {self._log_tail()}"
                    )
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.logfile.read_text()[-2000:] if self.logfile.exists() else "(no log)"


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (run scripts/install_redis.sh)")
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """A redis-server without persistence, shared by the whole session (tests use distinct key prefixes)."""
    server = RedisServer(redis_binary, appendonly=False)
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def redis_server_aof(redis_binary: str) -> Iterator[RedisServer]:
    """A redis-server with an append-only file, so that data survives `restart()`."""
    server = RedisServer(redis_binary, appendonly=True)
    server.start()
    yield server
    server.remove()


@pytest.fixture
def make_redis_server(redis_binary: str) -> Iterator[Callable[[], RedisServer]]:
    """Factory of private servers without persistence, for tests that stop or restart them."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(redis_binary, appendonly=False)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.remove()


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The service tests' tracker package (random siamrpn_alex weights), exported once per test module."""
    directory = tmp_path_factory.mktemp("packages")
    export_test_package(directory)
    return directory
