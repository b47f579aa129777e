"""`siamstream serve`: the command parses, and the process serves, then drains and exits 0 on SIGTERM.
`siamstream health` parses; it runs against real services in test_session_tls.py and tests/deploy."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream.cli.main import CommandGroups
from siamstream_services.grpc_api.cli import HEALTH_TIMEOUT_S, add_commands, run_health, run_serve
from siamstream_services.testing.ports import free_port
from tests.services.session_fixtures import export_test_package

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
SERVE = (
    "import argparse; from siamstream_services.grpc_api.cli import run_serve; "
    "run_serve(argparse.Namespace(config=None))"
)


def session_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    root = parser.add_subparsers(dest="command")
    bench = root.add_parser("bench").add_subparsers(dest="bench_command")
    add_commands(CommandGroups(root=root, bench=bench))
    return parser


def test_serve_command_registers() -> None:
    args = session_parser().parse_args(["serve", "--config", "service.toml"])
    assert args.run is run_serve and args.config == Path("service.toml")


def test_health_command_registers_with_a_bounded_timeout() -> None:
    parser = session_parser()
    args = parser.parse_args(["health"])
    assert args.run is run_health and args.timeout == HEALTH_TIMEOUT_S
    assert parser.parse_args(["health", "--timeout", "0.5"]).timeout == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["health", "--timeout", "0"])


def _wait_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, "the service exited during start-up"
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise AssertionError(f"no SERVING health within {START_TIMEOUT_S} s")


@pytest.mark.slow
def test_serve_process_drains_and_exits_on_sigterm(tmp_path: Path) -> None:
    export_test_package(tmp_path / "packages")
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "SIAMSTREAM_PACKAGE_DIR": str(tmp_path / "packages"),
        "SIAMSTREAM_LISTEN_ADDRESS": address,
        "SIAMSTREAM_METRICS_PORT": "0",
        "SIAMSTREAM_DRAIN_GRACE_S": "2",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-c", SERVE], env=env, stderr=stderr)
        try:
            _wait_serving(address, process)
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
    assert code == 0, log.read_text()[-2000:]
