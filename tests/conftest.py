"""Suite-wide rule: under CI a test server or tool that is missing fails the run instead of skipping.

Integration tests skip where a real server or checker (redis-server, tritonserver, the GStreamer RTSP
server, openssl, promtool, kubectl, hadolint, kubernetes-validate) is not installed, so that a developer can
run the rest without them. Their skip reasons all name the install script (`MISSING_SERVER_MARK`). With
`CI=true` such a skip would let a broken install step pass quietly, so it is reported as a failure.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

# Every "not installed" skip reason says which script installs the missing part: "(run scripts/install_...)".
MISSING_SERVER_MARK = "(run scripts/install_"


def skip_reason(report: pytest.TestReport) -> str:
    """The text a skipped report carries (pytest stores `(path, line, reason)` for a skip)."""
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    return str(reason).removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and os.environ.get("CI") == "true" and MISSING_SERVER_MARK in skip_reason(report):
        report.outcome = "failed"
        report.longrepr = f"CI=true: a test server or tool is missing: {skip_reason(report)}"
    return report
