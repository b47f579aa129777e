"""A redis-server process on a free loopback port, stopped by its pid: the store of the tests and of the
benchmarks that run the service over Redis (bench/soak.py, bench/camera_outage.py, bench/rtsp_latency.py).

Guarantees: the server binds 127.0.0.1 only, on a port from `free_port` that it keeps across restarts;
`start` returns once it answers PING, or stops it and raises after START_TIMEOUT_S; `stop` signals its pid
(SIGTERM, SIGKILL after STOP_TIMEOUT_S); `remove` also deletes its temporary data directory (AOF, pid
file, log). Nothing is written outside that directory (`--save ""`: no RDB snapshots).

Needs the `redis-server` binary (`scripts/install_redis.sh`).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .ports import free_port
from .processes import terminate

START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0


class RedisServer:
    """One redis-server process on 127.0.0.1 with its own data directory; restartable on the same port.

    `start` and `stop` hold a lock, so that a restart running in a thread and a stop from another (the
    main thread on Ctrl-C) never leave a server running behind the caller's back. As a context manager it
    is started on entry and removed (stopped, its directory deleted) on exit.
    """

    def __init__(self, binary: str, appendonly: bool) -> None:
        self.binary = binary
        self.appendonly = appendonly
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="siamstream-redis-"))
        self.pidfile = self.dir / "redis.pid"
        self.logfile = self.dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        # Reentrant: a start whose server never answers stops it.
        self._lock = threading.RLock()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The running server's pid; None while it is stopped."""
        return None if self._process is None else self._process.pid

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
        with self._lock:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            self._wait_for_ping()

    def freeze(self) -> None:
        """SIGSTOP the server: its port stays open but nothing answers, as with a hung server. Returns once
        the process is stopped (signals are delivered asynchronously)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{self._process.pid}/stat")
        deadline = time.monotonic() + START_TIMEOUT_S
        # The state follows the parenthesised command name: "T" is stopped.
        while stat.read_text().rpartition(")")[2].split()[0] != "T":
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server {self._process.pid} did not stop")
            time.sleep(0.001)

    def thaw(self) -> None:
        """SIGCONT a frozen server: it goes on with what its clients sent meanwhile."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM the server by its pid (it saves the AOF and exits), SIGKILL it if it hangs."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            process.send_signal(signal.SIGCONT)  # a frozen server handles SIGTERM only once it runs again
            terminate(process, STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Stop and start again on the same port and directory."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.remove()

    def _wait_for_ping(self) -> None:
        assert self._process is not None
        # No retries inside a PING (redis-py retries 3 times with backoff by default, seconds per call): this
        # loop retries, and sees between tries whether the server exited (its port taken, say).
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=0.2,
            socket_connect_timeout=0.2,
            retry=Retry(NoBackoff(), 0),
        )
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
