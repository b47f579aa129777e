"""The Dockerfile: hadolint-clean, installs exactly the project's pins with the service's extras, and its
health check works.

No Docker engine runs here, so the image is not built; what can be checked without one is checked on
the file itself, and the session target's HEALTHCHECK command is run against a real service.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path

from siamstream_services.testing.ports import free_port
from tests.deploy.dockerfile import DOCKERFILE, global_args, stages
from tests.deploy.tools import ROOT, TOOL_TIMEOUT_S, require_tool, run_tool
from tests.services.session_fixtures import export_test_package, running_service

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def image_extras() -> str:
    """The extras of the command groups the images run (`serve` and `health`, `ingest`), pip-spelled, and
    `triton`: the image serves with either inference backend (the GPU overlay points it at Triton)."""
    groups = PYPROJECT["project"]["entry-points"]["siamstream.commands"]
    extras = {"triton"}
    for group in ("serve", "ingest"):
        bracketed = re.search(r"\[(.*)\]", groups[group])
        assert bracketed is not None, group
        extras |= set(bracketed[1].split(","))
    return f"[{','.join(sorted(extras))}]"


def pinned(name: str) -> str:
    """The version constraints.txt pins `name` to."""
    pins = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    return pins[name]


def test_hadolint_finds_nothing() -> None:
    hadolint = require_tool("hadolint")
    result = run_tool([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_targets_and_base_image() -> None:
    assert list(stages()) == ["builder", "runtime", "session", "ingest"]
    base = global_args()["PYTHON_IMAGE"]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-bookworm", base)
    assert match, f"base image {base!r} is not pinned to a patch release"
    # The image's Python is the one the project requires.
    assert f">={match[1]}.{match[2]}," in PYPROJECT["project"]["requires-python"]


def test_builder_installs_the_pinned_cpu_torch_under_the_constraints() -> None:
    args = global_args()
    assert args["TORCH_VERSION"] == pinned("torch")
    assert args["TORCH_VARIANT"] == "cpu"
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    runs = " ".join(arguments for instruction, arguments in stages()["builder"] if instruction == "RUN")
    assert "--constraint constraints.txt" in runs
    assert '"torch==${TORCH_VERSION}+${TORCH_VARIANT}"' in runs
    assert f"--constraint /tmp/torch-variant.txt '.{image_extras()}'" in runs


def test_runtime_installs_this_version_offline_as_a_user() -> None:
    runtime = stages()["runtime"]
    runs = " ".join(arguments for instruction, arguments in runtime if instruction == "RUN")
    assert "--no-index --find-links /wheels" in runs
    assert f"'siamstream{image_extras()}=={PYPROJECT['project']['version']}'" in runs
    user = next(arguments for instruction, arguments in runtime if instruction == "USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0


def test_copied_paths_exist_and_reach_the_build_context() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for instruction, arguments in stages()["builder"]:
        if instruction == "COPY" and "--from" not in arguments:
            sources += shlex.split(arguments)[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in included, f"{source} is excluded by .dockerignore"
    assert "*" in ignore


def healthcheck_argv(stage: str) -> list[str]:
    """The stage's HEALTHCHECK command, run by this environment's interpreter as the image runs it."""
    check = next(arguments for instruction, arguments in stages()[stage] if instruction == "HEALTHCHECK")
    argv = json.loads(check.split("CMD", 1)[1])
    programs = {"python": [sys.executable], "siamstream": [sys.executable, "-m", "siamstream.cli"]}
    return [*programs[argv[0]], *argv[1:]]


async def run_check(argv: list[str], env: dict[str, str]) -> int:
    # Only the image's SIAMSTREAM_* settings, as in the container: a stray one would fail the settings.
    outside = {
        name: value for name, value in os.environ.items() if not name.upper().startswith("SIAMSTREAM_")
    }
    process = await asyncio.create_subprocess_exec(*argv, env={**outside, **env})
    return await asyncio.wait_for(process.wait(), TOOL_TIMEOUT_S)


async def test_session_healthcheck_passes_on_a_serving_service_and_fails_without_one(tmp_path: Path) -> None:
    argv = healthcheck_argv("session")
    export_test_package(tmp_path / "packages")
    health_address = f"127.0.0.1:{free_port()}"
    async with running_service(tmp_path / "packages", health_listen_address=health_address) as service:
        address = {"SIAMSTREAM_LISTEN_ADDRESS": f"0.0.0.0:{service.port}"}
        assert await run_check(argv, address) == 0
        # With a health port set, the check asks it (here the main address has nothing behind it).
        health_port = {
            "SIAMSTREAM_LISTEN_ADDRESS": f"0.0.0.0:{free_port()}",
            "SIAMSTREAM_HEALTH_LISTEN_ADDRESS": f"0.0.0.0:{health_address.rsplit(':', 1)[1]}",
        }
        assert await run_check(argv, health_port) == 0
    nothing_there = {"SIAMSTREAM_LISTEN_ADDRESS": f"0.0.0.0:{free_port()}"}
    # 1, never Docker's reserved 2.
    assert await run_check(argv, nothing_there) == 1


def test_session_image_serves_on_all_interfaces() -> None:
    session = stages()["session"]
    env = " ".join(arguments for instruction, arguments in session if instruction == "ENV")
    assert "SIAMSTREAM_LISTEN_ADDRESS=0.0.0.0:50051" in env
    assert ("CMD", '["serve"]') in session and ("CMD", '["ingest"]') in stages()["ingest"]
