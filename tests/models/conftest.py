"""Fixtures shared by the tracker-library tests."""

from __future__ import annotations

import pytest

from siamstream.benchmark.tracker import random_network
from siamstream.package import TrackerPackage, export_package
from siamstream.registry import get_config
from tests.models.cli_fixtures import TRACKER


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> TrackerPackage:
    """`cli_fixtures.TRACKER` with random weights, exported once per test module."""
    config = get_config(TRACKER)
    return export_package(random_network(config), config, tmp_path_factory.mktemp("package") / TRACKER)
