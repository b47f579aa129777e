"""One process reads both settings classes from one environment: each rejects unknown names in its own
namespace (`SIAMSTREAM_*` for the service, `SIAMSTREAM_INGEST_*` for camera ingestion) and leaves the
other's alone."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from pydantic import ValidationError

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.settings import ServiceSettings


def test_both_settings_read_one_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMSTREAM_STORE_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SIAMSTREAM_INGEST_LEASE_TTL_MS", "5000")
    monkeypatch.setenv("SIAMSTREAM_INGEST_METRICS_HOST", "127.0.0.1")
    assert str(ServiceSettings().store_url) == "redis://127.0.0.1:6379/0"
    ingest = IngestSettings()
    assert ingest.lease_ttl_ms == 5000 and ingest.metrics_host == IPv4Address("127.0.0.1")


def test_a_misspelt_ingest_name_fails_ingest_settings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMSTREAM_INGEST_LEASE_TTL", "5000")
    with pytest.raises(ValidationError, match="siamstream_ingest_lease_ttl"):
        IngestSettings()
    assert str(ServiceSettings().store_url) == "memory://"


def test_a_misspelt_service_name_fails_service_settings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMSTREAM_LISTEN_ADRESS", "0.0.0.0:50051")
    with pytest.raises(ValidationError, match="siamstream_listen_adress"):
        ServiceSettings()
    assert IngestSettings().lease_ttl_ms == 10_000
