"""Stopping a child process by its pid within a bounded time.

`terminate` is how the Redis launcher stops its server, and how the soak benchmark and the tests stop the
`siamstream serve` processes they start: SIGTERM first (a clean shutdown), SIGKILL when it does not exit.
"""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """SIGTERM `process` by its pid and wait; SIGKILL when it outlives `timeout_s`. Its exit code (negative:
    the signal that ended it). Returns at once for a process that already exited; waits at most twice
    `timeout_s` in all."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)
    return process.returncode
