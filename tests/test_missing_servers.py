"""Under CI, a test skipped for a missing server fails the run; other skips and local runs stay skips."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")
TESTS = """
import pytest

def test_needs_redis():
    pytest.skip("redis-server is not installed (run scripts/install_redis.sh)")

def test_needs_native_bf16():
    pytest.skip("bf16 is emulated on this CPU: too slow for this backbone")

@pytest.mark.skipif(True, reason="tritonserver not found (run scripts/install_triton.sh)")
def test_needs_triton():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(TESTS)
    return pytester


def test_missing_servers_fail_under_ci(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    # A skip during setup (a skipif mark, a fixture) turns into an error, one in the test into a failure.
    result.assert_outcomes(failed=1, errors=1, skipped=1)
    result.stdout.fnmatch_lines(["*CI=true: a test server or tool is missing: redis-server*"])


def test_missing_servers_skip_outside_ci(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    suite.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio").assert_outcomes(skipped=3)
