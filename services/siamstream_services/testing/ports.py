"""Free loopback ports for the servers the tests and benchmarks start.

A port is free when `free_port` returns it, not reserved: the caller binds it soon after, and a server
that loses the race fails to start (the launchers here then report it) rather than sharing a port.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
