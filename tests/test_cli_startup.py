"""Building the `siamstream` parser, and `siamstream health` (the session image's HEALTHCHECK, every 10 s),
load no heavy library: the command modules import torch, OpenCV and the rest in their run functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from siamstream.cli.evaluate import CHALLENGES
from siamstream.data import Challenge
from siamstream_services.testing.ports import free_port

SIAMSTREAM = [sys.executable, "-m", "siamstream.cli"]
HEAVY_MODULES = ("torch", "cv2", "matplotlib", "tritonclient", "redis")
# Prints the heavy modules loaded by the code placed before it, as JSON on the last line of stdout.
REPORT_HEAVY = f"import json, sys; print(json.dumps(sorted(set({HEAVY_MODULES!r}) & set(sys.modules))))"


def heavy_modules_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The heavy modules in `sys.modules` after `code` runs in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT_HEAVY}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def test_building_the_parser_loads_no_heavy_module() -> None:
    code = "from siamstream.cli.main import build_parser\nbuild_parser()"
    assert heavy_modules_after(code) == []


def test_health_probe_loads_no_heavy_module_and_fails_with_nothing_listening() -> None:
    # Only this test's SIAMSTREAM_* settings, as in the container: a stray one could fail the settings.
    outside = {name: value for name, value in os.environ.items() if not name.startswith("SIAMSTREAM_")}
    env = {**outside, "SIAMSTREAM_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}"}
    code = (
        "from siamstream.cli.main import main\n"
        "try:\n"
        "    main(['health', '--timeout', '1'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 1, stop.code"
    )
    assert heavy_modules_after(code, env) == []


def test_health_help_exits_0() -> None:
    completed = subprocess.run(
        [*SIAMSTREAM, "health", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "--timeout TIMEOUT" in completed.stdout


def test_eval_challenge_choices_are_the_generators_challenges() -> None:
    assert tuple(challenge.value for challenge in Challenge) == CHALLENGES
