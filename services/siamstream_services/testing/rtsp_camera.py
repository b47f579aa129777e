"""The RTSP test camera (`rtsp_server.py` beside this module) as a process to start, kill, freeze, restart.

The server script runs under the system Python (`SYSTEM_PYTHON`), whose Debian GStreamer bindings do not
import from a venv (`scripts/install_rtsp.sh` installs them); it is found by its path next to this file.
Guarantees: the camera serves `rtsp://127.0.0.1:PORT/scene` on loopback only (its RTP ports too); `start`
returns once the server printed READY, or kills it and raises after READY_TIMEOUT_S; `kill` signals the
pid it started and reaps it within STOP_TIMEOUT_S. The camera writes no files of its own (a `timeline`
file is the caller's).
"""

from __future__ import annotations

import select
import signal
import subprocess
from pathlib import Path

import numpy as np

from .rtsp_server import INDEX_BITS, INDEX_CELL

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
AVAILABLE_TIMEOUT_S = 20.0

RTSP_MISSING = "GStreamer RTSP server is not installed (run scripts/install_rtsp.sh)"


def rtsp_available() -> bool:
    """Whether the system Python can run the test server."""
    check = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        command = [SYSTEM_PYTHON, "-c", check]
        return subprocess.run(command, capture_output=True, timeout=AVAILABLE_TIMEOUT_S).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def decode_index(frame: np.ndarray) -> int:
    """The frame index the server drew along the top of a received BGR frame."""
    centre = INDEX_CELL // 2
    bits = [frame[centre, bit * INDEX_CELL + centre].mean() > 128 for bit in range(INDEX_BITS)]
    return int("".join("1" if bit else "0" for bit in bits), 2)


class RtspCamera:
    """One test server process on 127.0.0.1:`port` (frames `width`x`height` pixels at `fps`); stopped by
    its pid. With `timeline`, the server appends `<frame index> <unix time>` as each frame is encoded."""

    def __init__(
        self, port: int, width: int = 320, height: int = 240, fps: int = 30, timeline: Path | None = None
    ) -> None:
        self.port = port
        self.args = ["--port", str(port), "--width", str(width), "--height", str(height), "--fps", str(fps)]
        if timeline is not None:
            self.args += ["--timeline", str(timeline)]
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/scene"

    @property
    def pid(self) -> int | None:
        """The running server's pid; None while it is stopped."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the server and wait until it serves (it prints READY), at most READY_TIMEOUT_S."""
        process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        # The server prints READY once it serves, or exits (end of file): either makes stdout readable.
        readable, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
        line = process.stdout.readline() if readable else ""
        if not line.startswith("READY"):
            self.kill()
            raise RuntimeError(f"RTSP test server did not start within {READY_TIMEOUT_S} s: {line!r}")

    def kill(self) -> None:
        """SIGKILL the server (a camera that drops off the network) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)
        assert process.stdout is not None
        process.stdout.close()

    def freeze(self) -> None:
        """SIGSTOP the server: its socket stays open but nothing arrives (a hung camera)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen server."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)
