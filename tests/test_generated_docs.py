"""The committed pages that scripts/generate_docs.py writes (docs/models.md from the registry and the
zoo, docs/configuration.md from the settings models) are what it writes today: one run checks both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "generate_docs.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.mark.parametrize("page", ["models.md", "configuration.md"])
def test_committed_page_is_what_the_generator_writes(generated: Path, page: str) -> None:
    committed = (REPO_ROOT / "docs" / page).read_text()
    assert committed == (generated / page).read_text(), "stale: run scripts/generate_docs.py"
