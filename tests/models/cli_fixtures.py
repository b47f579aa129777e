"""What the offline-command tests share: the console script run as a subprocess, and the tracker of the
`package` fixture (tests/models/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

SIAMSTREAM = [sys.executable, "-m", "siamstream.cli"]
TRACKER = "siamrpn_alex"


def siamstream(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SIAMSTREAM, *args], capture_output=True, text=True, timeout=600)
