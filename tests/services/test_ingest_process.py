"""`siamstream ingest` beside `siamstream serve`: two processes on a real Redis, a real RTSP camera, gRPC over
loopback. The camera is attached through the service, tracked by the worker, watched through the service;
SIGTERM ends the watch cleanly, drains the service and releases the worker's lease."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
import redis

from siamstream.cli.main import CommandGroups
from siamstream_services.cameras.config import IngestSettings
from siamstream_services.cameras.directory import camera_key
from siamstream_services.grpc_api.auth import ANONYMOUS_OWNER
from siamstream_services.ingest.cli import add_commands, run_ingest_command
from siamstream_services.ingest.process import open_ingest
from siamstream_services.settings import ServiceSettings
from siamstream_services.testing.ports import free_port
from siamstream_services.testing.redis_server import RedisServer
from siamstream_services.testing.rtsp_camera import RTSP_MISSING, RtspCamera, rtsp_available
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.session_fixtures import TRACKER, export_test_package

SIAMSTREAM = Path(sys.executable).with_name("siamstream")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# Long, so that a watch still open when the service drains would visibly hold the drain this long.
DRAIN_GRACE_S = 10.0
CAMERA_ID = "cam-proc"
# The services run without API keys: the camera is the anonymous owner's.
CAMERA_KEY = camera_key(ANONYMOUS_OWNER, CAMERA_ID)
BOX = pb.Box(x=100, y=80, width=48, height=48)


def test_ingest_command_registers() -> None:
    parser = argparse.ArgumentParser()
    root = parser.add_subparsers(dest="command")
    bench = root.add_parser("bench").add_subparsers(dest="bench_command")
    add_commands(CommandGroups(root=root, bench=bench))
    args = parser.parse_args(["ingest", "--config", "service.toml"])
    assert args.run is run_ingest_command and args.config == Path("service.toml")


def test_ingest_refuses_a_store_without_leases() -> None:
    with pytest.raises(ValueError, match=r"needs a Redis store .* \(got memory://\)"):
        open_ingest(ServiceSettings(store_url="memory://"), IngestSettings())


class Process:
    """A `siamstream` subcommand with its stderr in a file; stopped by its pid."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as stderr:
            self.popen = subprocess.Popen(
                [str(SIAMSTREAM), command], env=env, stdin=subprocess.DEVNULL, stderr=stderr
            )

    def terminate(self) -> int:
        """SIGTERM and wait for the exit code."""
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=STOP_TIMEOUT_S)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=STOP_TIMEOUT_S)

    def output(self) -> str:
        return self.log.read_text()


def _wait(check, process: Process, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.popen.poll() is None, f"exited while waiting for {what}: {process.output()[-2000:]}"
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {START_TIMEOUT_S} s: {process.output()[-2000:]}")


def _metrics(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1.0) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError):
        return None


def _xread_waiters(redis_url: str) -> set[int]:
    """The ids of the clients of the Redis at `redis_url` blocked in XREAD (watchers waiting for results)."""
    with redis.Redis.from_url(redis_url) as client:
        return {
            int(entry["id"])
            for entry in client.client_list()
            if entry["cmd"] == "xread" and "b" in entry["flags"]
        }


def _serving(stub: pb_grpc.TrackingServiceStub) -> bool:
    """Whether the service answers (ListCameras needs the camera directory: FAILED_PRECONDITION without)."""
    try:
        stub.ListCameras(pb.ListCamerasRequest(), timeout=1.0)
        return True
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.UNAVAILABLE:  # not listening yet
            return False
        raise


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.skipif(not rtsp_available(), reason=RTSP_MISSING)
def test_serve_and_ingest_track_a_camera_and_stop_cleanly_on_sigterm(
    tmp_path: Path, redis_server: RedisServer, camera: RtspCamera
) -> None:
    export_test_package(tmp_path / "packages")
    prefix = f"test-process-{uuid.uuid4().hex[:8]}:"
    address = f"127.0.0.1:{free_port()}"
    worker_metrics_port = free_port()
    # Both processes read both namespaces (SIAMSTREAM_* and SIAMSTREAM_INGEST_*) from one environment.
    common = {
        **os.environ,
        "SIAMSTREAM_PACKAGE_DIR": str(tmp_path / "packages"),
        "SIAMSTREAM_STORE_URL": redis_server.url,
        "SIAMSTREAM_INGEST_KEY_PREFIX": prefix,
        "SIAMSTREAM_INGEST_LEASE_TTL_MS": "3000",
        "SIAMSTREAM_INGEST_CLAIM_INTERVAL_S": "0.3",
    }
    serve = Process(
        "serve",
        {
            **common,
            "SIAMSTREAM_LISTEN_ADDRESS": address,
            "SIAMSTREAM_METRICS_PORT": "0",
            "SIAMSTREAM_DRAIN_GRACE_S": str(DRAIN_GRACE_S),
        },
        tmp_path / "serve.log",
    )
    ingest: Process | None = None
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.TrackingServiceStub(channel)
            _wait(lambda: _serving(stub), serve, "the service")
            target_id = stub.AttachCamera(
                pb.AttachCameraRequest(camera_id=CAMERA_ID, url=camera.url, box=BOX, tracker=TRACKER),
                timeout=5.0,
            ).target_id
            waiting_before = _xread_waiters(redis_server.url)  # another test's, if any
            watch = stub.WatchTrack(
                pb.WatchTrackRequest(camera_id=CAMERA_ID, target_id=target_id), timeout=START_TIMEOUT_S
            )
            # A watch sees the results published after it opens: the worker starts once it waits for them.
            _wait(lambda: bool(_xread_waiters(redis_server.url) - waiting_before), serve, "the watch")
            ingest = Process(
                "ingest",
                {
                    **common,
                    "SIAMSTREAM_METRICS_PORT": str(worker_metrics_port),
                    "SIAMSTREAM_INGEST_METRICS_HOST": "127.0.0.1",
                },
                tmp_path / "ingest.log",
            )
            results = [next(watch) for _ in range(5)]
            _wait(lambda: _metrics(worker_metrics_port) is not None, ingest, "worker metrics")
            exposition = _metrics(worker_metrics_port)
            listed = stub.ListCameras(pb.ListCamerasRequest(), timeout=2.0).cameras

            sigterm_at = time.monotonic()
            serve_code = serve.terminate()  # with the watch still open
            drain_s = time.monotonic() - sigterm_at
            after = list(watch)  # ended with OK: an error status would raise here
        ingest_code = ingest.terminate()
        with redis.Redis.from_url(redis_server.url) as client:
            holder = client.get(f"{prefix}camera-lease:{CAMERA_KEY}")
    finally:
        serve.kill()
        if ingest is not None:
            ingest.kill()

    assert [r.result.frame_index for r in results] == [0, 1, 2, 3, 4]
    assert len({r.session_id for r in results}) == 1
    assert {r.camera_id for r in results} == {CAMERA_ID} and {r.target_id for r in results} == {target_id}
    assert exposition is not None
    assert f'siamstream_camera_state{{camera="{CAMERA_KEY}",state="streaming"}} 1.0' in exposition
    assert 'siamstream_stage_seconds_count{stage="total",tracker="siamrpn_alex"}' in exposition
    assert [c.camera_id for c in listed] == [CAMERA_ID] and listed[0].worker_id.count("-") >= 1
    # The drain ended the open watch at once instead of holding it through the grace period.
    assert serve_code == 0, serve.output()[-2000:]
    assert drain_s < DRAIN_GRACE_S / 2, f"the drain took {drain_s:.1f} s"
    assert all(r.session_id == results[0].session_id for r in after)
    assert "Traceback" not in serve.output() and " ERROR " not in serve.output(), serve.output()[-3000:]
    assert ingest_code == 0, ingest.output()[-2000:]
    assert holder is None  # released on SIGTERM: another worker takes the camera at its next claim
    assert "Traceback" not in ingest.output(), ingest.output()[-3000:]
