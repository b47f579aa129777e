"""The launchers of `siamstream_services.testing` on real processes: bound to loopback, started and stopped
within their timeouts, by pid, leaving no process and no temporary directory behind."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from siamstream_services.testing import rtsp_camera
from siamstream_services.testing.ports import free_port
from siamstream_services.testing.processes import terminate
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.testing.rtsp_camera import RTSP_MISSING, RtspCamera, rtsp_available

needs_rtsp = pytest.mark.skipif(not rtsp_available(), reason=RTSP_MISSING)


def gone(pid: int) -> bool:
    """Whether no process `pid` exists (a reaped child leaves no /proc entry)."""
    return not Path(f"/proc/{pid}").exists()


def child(code: str) -> subprocess.Popen[bytes]:
    """A Python child running `code`, started once it printed its first line."""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    process.stdout.close()
    return process


def test_terminate_returns_the_exit_of_a_process_that_stops_on_sigterm() -> None:
    process = child("import time; print('ready', flush=True); time.sleep(60)")
    assert terminate(process, timeout_s=5.0) == -signal.SIGTERM
    assert gone(process.pid)


def test_terminate_kills_a_process_that_ignores_sigterm_after_the_timeout() -> None:
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True)"
    process = child(f"{ignore}; time.sleep(60)")
    started = time.monotonic()
    assert terminate(process, timeout_s=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5.0
    assert gone(process.pid)


def test_redis_binds_loopback_and_remove_leaves_no_process_and_no_directory(redis_binary: str) -> None:
    server = RedisServer(redis_binary, appendonly=True)
    with server:
        pid = server.pid
        assert pid is not None and int(server.pidfile.read_text()) == pid
        with redis.Redis(host="127.0.0.1", port=server.port) as client:
            assert client.config_get("bind") == {"bind": "127.0.0.1"}
            assert client.config_get("dir") == {"dir": str(server.dir)}
    assert server.pid is None and gone(pid)
    assert not server.dir.exists()


def test_redis_on_a_taken_port_fails_to_start_and_leaves_no_process(redis_binary: str) -> None:
    server = RedisServer(redis_binary, appendonly=False)
    with socket.create_server(("127.0.0.1", server.port)), pytest.raises(RuntimeError, match="exited with 1"):
        server.start()
    pid = server.pid
    server.remove()
    assert pid is not None and gone(pid)
    assert not server.dir.exists()


@needs_rtsp
def test_rtsp_camera_serves_on_loopback_and_kill_leaves_no_process() -> None:
    camera = RtspCamera(free_port())
    camera.start()
    pid = camera.pid
    try:
        assert pid is not None and not gone(pid)
        with socket.create_connection(("127.0.0.1", camera.port), timeout=5.0):
            pass
    finally:
        camera.kill()
    assert camera.pid is None and gone(pid)


@needs_rtsp
def test_rtsp_camera_that_never_serves_is_killed_after_the_ready_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that hangs before READY (the start once waited for its line without a bound)."""
    pid_file = tmp_path / "pid"
    hang = tmp_path / "hang.py"
    hang.write_text(
        "import os, pathlib, time\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    monkeypatch.setattr(rtsp_camera, "SERVER_SCRIPT", hang)
    monkeypatch.setattr(rtsp_camera, "READY_TIMEOUT_S", 2.0)
    camera = RtspCamera(free_port())
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not start within 2\.0 s"):
        camera.start()
    assert time.monotonic() - started < 10.0
    assert camera.pid is None and gone(int(pid_file.read_text()))
