"""The RTSP test camera (tests/services/rtsp_server.py) as a process the tests start, kill, freeze, restart.

Needs Debian's GStreamer RTSP bindings (`scripts/install_rtsp.sh`); without them the tests that use it
are skipped.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from tests.services.rtsp_server import INDEX_BITS, INDEX_CELL, background_bytes, render_frame, target_rows

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
READY_TIMEOUT_S = 10.0


RTSP_MISSING = "GStreamer RTSP server is not installed (run scripts/install_rtsp.sh)"


def rtsp_available() -> bool:
    """Whether the system Python can run the test server."""
    check = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def decode_index(frame: np.ndarray) -> int:
    """The frame index drawn along the top of a received BGR frame."""
    centre = INDEX_CELL // 2
    bits = [frame[centre, bit * INDEX_CELL + centre].mean() > 128 for bit in range(INDEX_BITS)]
    return int("".join("1" if bit else "0" for bit in bits), 2)


def scene_frame(index: int, width: int, height: int) -> np.ndarray:
    """Frame `index` exactly as the server generates it (BGR uint8 `HxWx3`)."""
    data = render_frame(index, width, height, background_bytes(width, height), target_rows())
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


class RtspCamera:
    """One test server process on 127.0.0.1:`port`; stopped by its pid."""

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

    def start(self) -> None:
        """Start the server and wait until it serves (it prints READY)."""
        process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._process = process
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints READY or exits
        if not line.startswith("READY") or time.monotonic() > deadline:
            self.kill()
            raise RuntimeError(f"RTSP test server did not start: {line!r}")

    def kill(self) -> None:
        """SIGKILL the server (a camera that drops off the network) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(timeout=5)

    def freeze(self) -> None:
        """SIGSTOP the server: its socket stays open but nothing arrives (a hung camera)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)
