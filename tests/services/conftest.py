"""Fixtures over the servers of `siamstream_services.testing`: redis-servers and the RTSP test camera, each
on a free loopback port and stopped by its pid at teardown; the tracker package the service tests serve;
and `resolve_as`, a host name resolver of the test's choosing.

`redis-server` comes from `scripts/install_redis.sh`; without it the tests that need one are skipped. The
tests that use `camera` skip themselves where `rtsp_available()` is false.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siamstream_services.testing.ports import free_port
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.testing.rtsp_camera import RtspCamera
from tests.services.pki import make_pki
from tests.services.session_fixtures import export_test_package


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (run scripts/install_redis.sh)")
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """A redis-server without persistence, shared by the whole session (tests use distinct key prefixes)."""
    with RedisServer(redis_binary, appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server_aof(redis_binary: str) -> Iterator[RedisServer]:
    """A redis-server with an append-only file, so that data survives `restart()`."""
    with RedisServer(redis_binary, appendonly=True) as server:
        yield server


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


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    """A started RTSP test camera (320x240 at 30 frames/s), killed after the test."""
    server = RtspCamera(free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The service tests' tracker package (random siamrpn_alex weights), exported once per test module."""
    directory = tmp_path_factory.mktemp("packages")
    export_test_package(directory)
    return directory


@pytest.fixture
def resolve_as(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """`resolve_as(name, address)` makes `name` resolve to `address` alone for the rest of the test, as a
    DNS server of the caller's choosing would; other names resolve as before."""
    real = socket.getaddrinfo
    names: dict[str, str] = {}

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list:
        if host not in names:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (names[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names.__setitem__


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (`tests.services.pki`)."""
    return make_pki(tmp_path_factory.mktemp("pki"))
