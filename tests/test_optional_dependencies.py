"""An install without the extras (`pip install siamstream`): tracking with the Python API and the library
commands work, and a command whose extras are missing names them.

The extras are hidden from a fresh interpreter by an import hook that answers their modules as a missing
package does (ModuleNotFoundError), so this environment, which has every extra, stands for one without.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_PACKAGE = ROOT / "models" / "packages" / "demo"
# The top-level modules each extra installs (pyproject.toml, [project.optional-dependencies]).
EXTRA_MODULES = {
    "service": (
        "grpc",
        "grpc_health",
        "grpc_reflection",
        "google.protobuf",
        "redis",
        "prometheus_client",
        "simplejpeg",
        "pydantic_settings",
    ),
    "triton": ("tritonclient",),
    "train": ("matplotlib",),
}
HIDDEN = sorted(module for modules in EXTRA_MODULES.values() for module in modules)
HIDE_MODULES = """
import sys

HIDDEN = {hidden!r}


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if any(name == module or name.startswith(module + ".") for module in HIDDEN):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def run_without_extras(code: str, hidden: list[str] = HIDDEN) -> dict:
    """Run `code` in a fresh interpreter without the modules `hidden` (default: every extra's); it prints
    one JSON value last."""
    completed = subprocess.run(
        [sys.executable, "-c", HIDE_MODULES.format(hidden=hidden) + code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def test_tracking_needs_no_extra() -> None:
    code = f"""
import json
import importlib

hidden = []
for module in HIDDEN:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        hidden.append(module)

from siamstream import Tracker
from siamstream.data import SequenceSpec, generate_sequence

video = generate_sequence(SequenceSpec(length=3, seed=1, width=320, height=240))
tracker = Tracker.from_package({str(DEMO_PACKAGE)!r})
tracker.init(video.frame(0), video.init_box)
results = [tracker.update(video.frame(index)) for index in (1, 2)]
loaded = sorted(name for name in sys.modules if name in HIDDEN or name.startswith("siamstream_services"))
print(json.dumps({{"hidden": hidden, "loaded": loaded, "statuses": [r.status.value for r in results]}}))
"""
    report = run_without_extras(code)
    assert report["hidden"] == HIDDEN  # the hook works: none of the extras' modules imports
    assert report["loaded"] == []  # neither they nor the service (its gRPC stubs included) were imported
    assert report["statuses"] == ["tracking", "tracking"]


def test_library_commands_run_and_others_name_their_extras(tmp_path: Path) -> None:
    repository, training = tmp_path / "repository", tmp_path / "training"
    commands = [
        ["models"],
        ["serve"],
        f"triton-repository --package {DEMO_PACKAGE} --out {repository} --form cpu-test".split(),
        f"train --tracker siamfc_alexnet --data synthetic:1 --epochs 1 --out {training}".split(),
    ]
    code = f"""
import contextlib
import io
import json

from siamstream.cli.main import main

answers = []
for argv in {commands!r}:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as stop:
            code = stop.code
    answers.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(answers))
"""
    models, serve, triton_repository, train = run_without_extras(code)
    assert models[0] == 0 and "siamfc_alexnet" in models[1]
    assert serve[0] == 2 and "pip install 'siamstream[service]'" in serve[2]
    assert "No module named" in serve[2]
    assert triton_repository[0] == 2 and "pip install 'siamstream[triton]'" in triton_repository[2]
    assert train[0] == 2 and "No module named 'matplotlib'" in train[2]
    assert "pip install 'siamstream[train]'" in train[2]
    assert not repository.exists() and not training.exists()


def test_evaluation_figures_need_no_matplotlib() -> None:
    code = """
import json

import numpy as np

from siamstream.evaluation import evaluate_sequence, got10k_ious, overlap

predicted = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0]])
truth = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
metrics = evaluate_sequence(truth, predicted)
print(json.dumps({
    "overlap": overlap(predicted, truth).tolist(),
    "got10k": got10k_ious(truth, predicted).tolist(),
    "success_auc": metrics.success_auc,
    "matplotlib": "matplotlib" in sys.modules,
}))
"""
    report = run_without_extras(code, hidden=["matplotlib"])
    # Frame 1 shifted by half its width: intersection 50 px², union 150 px².
    assert report["overlap"] == pytest.approx([1.0, 1 / 3])
    assert report["got10k"] == pytest.approx([1 / 3])  # GOT-10k never scores the first frame
    # IoU 1 is above 20 of the 21 thresholds 0, 0.05 ... 1, IoU 1/3 above 7 (0 ... 0.30).
    assert report["success_auc"] == pytest.approx((20 + 7) / (2 * 21))
    assert report["matplotlib"] is False


def test_the_embedded_service_needs_no_triton_client() -> None:
    code = f"""
import asyncio
import contextlib
import io
import json
import os
from pathlib import Path

import pytest

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream.cli.main import main
from siamstream_services.demo.local_service import local_service


async def health() -> int:
    async with local_service(Path({str(DEMO_PACKAGE)!r})) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    return answer.status


status = asyncio.run(health())
os.environ.update(
    SIAMSTREAM_PACKAGE_DIR={str(DEMO_PACKAGE.parent)!r},
    SIAMSTREAM_TRACKER_PACKAGES='["demo"]',
    SIAMSTREAM_INFERENCE_BACKEND="triton://127.0.0.1:1",
    SIAMSTREAM_METRICS_PORT="0",
)
err = io.StringIO()
with contextlib.redirect_stderr(err):
    try:
        main(["serve"])
    except SystemExit as stop:
        code = stop.code
loaded = sorted(name for name in sys.modules if name.startswith("tritonclient"))
print(json.dumps({{"status": status, "code": code, "err": err.getvalue(), "loaded": loaded}}))
"""
    report = run_without_extras(code, hidden=["tritonclient"])
    assert report["status"] == 1  # SERVING
    assert report["code"] == 2
    assert "triton://127.0.0.1:1" in report["err"] and "pip install 'siamstream[triton]'" in report["err"]
    assert "Traceback" not in report["err"]
    assert report["loaded"] == []


def test_client_without_grpc_names_its_extra_and_nothing_else(tmp_path: Path) -> None:
    video = tmp_path / "frames"
    video.mkdir()
    server = ["--server", "127.0.0.1:1"]
    commands = [
        ["client", "track", "--video", str(video), "--box", "1,1,4,4", *server, "--out", str(tmp_path / "r")],
        ["client", "trackers", *server],
    ]
    code = f"""
import contextlib
import gc
import io
import json
import warnings

from siamstream.cli.main import main

answers = []
for argv in {commands!r}:
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        try:
            main(argv)
        except SystemExit as stop:
            code = stop.code
        gc.collect()  # a coroutine never awaited warns when it is collected
    answers.append([code, err.getvalue(), [str(warning.message) for warning in caught]])
print(json.dumps(answers))
"""
    for status, err, warnings in run_without_extras(code):
        assert status == 2
        assert err.endswith("this command needs the extras [service]: pip install 'siamstream[service]'\n")
        assert warnings == []
